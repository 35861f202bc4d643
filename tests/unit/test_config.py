"""Unit tests for routeq.config: defaults, file loading, precedence and load-time validation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from tierspec import tier_dict

from routeq.config import (
    CHEAP_TIER_SYSTEM_PROMPT,
    DEFAULT_SIM_URL,
    JudgeConfig,
    ModelEndpoint,
    RuleConfig,
    Settings,
    TierConfig,
    WorkerConfig,
    default_tiers,
    load_settings,
    resolve_config_path,
)
from routeq.errors import ConfigError, RouteqError

VALID_TOML = """
database_url = "postgres://app@db.example:5432/routeq"
broker_url = "redis://cache.example:6379/0"

[[tiers]]
name = "small"
provider = "openai"
base_url = "https://api.example.com/v1/"
model = "small-1"
api_key_env = "EXAMPLE_API_KEY"
input_price_per_mtok = "0.15"
output_price_per_mtok = "0.60"
context_window = 8000
max_output_tokens = 512

[[tiers]]
name = "large"
provider = "anthropic"
base_url = "https://api.anthropic.example"
model = "large-1"
input_price_per_mtok = 3
output_price_per_mtok = 15
context_window = 200000
max_concurrency = 2
judge = false
judge_fail_mode = "closed"

[judge]
pass_threshold = 7

[judge.model]
provider = "openai"
base_url = "https://api.example.com/v1"
model = "judge-1"
input_price_per_mtok = "0.10"
output_price_per_mtok = "0.40"

[routing]
default_tier = "small"

[[routing.rules]]
name = "code"
tier = "large"
keywords = ["code", "debug"]

[[routing.rules]]
name = "vip"
tier = "large"
user = "alice"
metadata = { plan = "pro" }
"""

TIER_TOML = """
[[tiers]]
name = "only"
provider = "openai"
base_url = "https://api.example.com/v1"
model = "m"
input_price_per_mtok = 1
output_price_per_mtok = 2
context_window = 1000
"""


def write(tmp_path: Path, text: str, name: str = "routeq.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults ----------------------------------------------------------------------------------


class TestDefaults:
    def test_three_default_tiers_cheapest_first(self, clean_env: Path) -> None:
        settings = load_settings()
        assert settings.tier_names == ["cheap", "mid", "frontier"]
        assert settings.config_file is None

    def test_default_tiers_run_on_the_simulator(self, clean_env: Path) -> None:
        settings = load_settings()
        for tier in settings.tiers:
            assert tier.provider == "openai"
            assert tier.base_url == DEFAULT_SIM_URL
            assert tier.api_key_env is None
        assert [t.model for t in settings.tiers] == ["sim-small", "sim-medium", "sim-large"]

    def test_default_prices_and_windows_increase_up_the_ladder(self, clean_env: Path) -> None:
        cheap, mid, frontier = load_settings().tiers
        assert cheap.input_price_per_mtok == Decimal("0.15")
        assert cheap.output_price_per_mtok == Decimal("0.60")
        assert mid.input_price_per_mtok == Decimal("1.00")
        assert frontier.output_price_per_mtok == Decimal("15.00")
        assert cheap.context_window < mid.context_window < frontier.context_window

    def test_only_cheap_tier_has_escalate_prompt(self, clean_env: Path) -> None:
        cheap, mid, frontier = load_settings().tiers
        assert cheap.system_prompt == CHEAP_TIER_SYSTEM_PROMPT
        assert "[ESCALATE]" in CHEAP_TIER_SYSTEM_PROMPT
        assert mid.system_prompt is None
        assert frontier.system_prompt is None

    def test_default_judge_model_is_set(self, clean_env: Path) -> None:
        judge = load_settings().judge
        assert judge.enabled is True
        assert judge.pass_threshold == 6
        assert judge.model is not None
        assert judge.model.model == "sim-judge"
        assert judge.model.base_url == DEFAULT_SIM_URL
        assert "score" in judge.rubric

    def test_other_defaults(self, clean_env: Path) -> None:
        settings = load_settings()
        assert settings.database_url is None
        assert settings.broker_url is None
        assert settings.state_dir == Path(".routeq")
        assert settings.routing.rules is None
        assert settings.routing.default_tier is None
        assert settings.retry.max_deliveries == 3
        limits = settings.time_limits
        assert limits.soft_s < limits.hard_s < limits.visibility_s

    def test_tier_queue_name(self, clean_env: Path) -> None:
        assert load_settings().tier("mid").queue == "tier.mid"

    def test_settings_are_frozen(self, clean_env: Path) -> None:
        settings = load_settings()
        with pytest.raises(ValidationError, match="frozen"):
            settings.max_query_chars = 5

    def test_config_error_is_a_routeq_error(self) -> None:
        assert issubclass(ConfigError, RouteqError)


# -- loading a file -----------------------------------------------------------------------------


class TestLoadFile:
    def test_valid_file_from_working_directory(self, clean_env: Path) -> None:
        path = write(clean_env, VALID_TOML)
        settings = load_settings()
        assert settings.config_file == Path("routeq.toml")
        assert settings.config_file.resolve() == path.resolve()
        assert settings.tier_names == ["small", "large"]

    def test_tiers_are_parsed(self, clean_env: Path) -> None:
        write(clean_env, VALID_TOML)
        small, large = load_settings().tiers
        assert small.base_url == "https://api.example.com/v1"  # trailing slash stripped
        assert small.input_price_per_mtok == Decimal("0.15")
        assert small.output_price_per_mtok == Decimal("0.60")
        assert small.max_output_tokens == 512
        assert small.api_key_env == "EXAMPLE_API_KEY"
        assert small.judge is True
        assert small.judge_fail_mode == "open"
        assert large.provider == "anthropic"
        assert large.input_price_per_mtok == Decimal(3)
        assert large.max_concurrency == 2
        assert large.judge is False
        assert large.judge_fail_mode == "closed"

    def test_judge_and_routing_are_parsed(self, clean_env: Path) -> None:
        write(clean_env, VALID_TOML)
        settings = load_settings()
        assert settings.judge.pass_threshold == 7
        assert settings.judge.model is not None
        assert settings.judge.model.model == "judge-1"
        assert settings.routing.default_tier == "small"
        rules = settings.routing.rules
        assert rules is not None
        assert [r.name for r in rules] == ["code", "vip"]
        assert rules[0].keywords == ["code", "debug"]
        assert rules[1].user == "alice"
        assert rules[1].metadata == {"plan": "pro"}

    def test_urls_from_file(self, clean_env: Path) -> None:
        write(clean_env, VALID_TOML)
        settings = load_settings()
        assert settings.database_url == "postgresql+psycopg://app@db.example:5432/routeq"
        assert settings.broker_url == "redis://cache.example:6379/0"

    def test_explicit_path_argument(self, clean_env: Path) -> None:
        path = write(clean_env, TIER_TOML, name="custom.toml")
        settings = load_settings(path)
        assert settings.config_file == path
        assert settings.tier_names == ["only"]

    def test_routeq_config_env_var(self, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = write(clean_env, TIER_TOML, name="elsewhere.toml")
        write(clean_env, VALID_TOML)  # ./routeq.toml must lose to $ROUTEQ_CONFIG
        monkeypatch.setenv("ROUTEQ_CONFIG", str(path))
        settings = load_settings()
        assert settings.config_file == path
        assert settings.tier_names == ["only"]

    def test_explicit_path_beats_env_var(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        explicit = write(clean_env, TIER_TOML, name="explicit.toml")
        monkeypatch.setenv("ROUTEQ_CONFIG", str(clean_env / "missing.toml"))
        assert load_settings(explicit).tier_names == ["only"]

    def test_empty_file_gives_defaults(self, clean_env: Path) -> None:
        write(clean_env, "")
        settings = load_settings()
        assert settings.tier_names == ["cheap", "mid", "frontier"]
        assert settings.config_file == Path("routeq.toml")

    def test_resolve_config_path_without_file(self, clean_env: Path) -> None:
        assert resolve_config_path() is None

    def test_resolve_config_path_ignores_directory_named_routeq_toml(self, clean_env: Path) -> None:
        (clean_env / "routeq.toml").mkdir()
        assert resolve_config_path() is None

    def test_empty_routeq_config_falls_back_to_working_directory(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(clean_env, TIER_TOML)
        monkeypatch.setenv("ROUTEQ_CONFIG", "")
        assert resolve_config_path() == Path("routeq.toml")


# -- precedence ----------------------------------------------------------------------------------


class TestPrecedence:
    def test_file_beats_defaults(self, clean_env: Path) -> None:
        write(clean_env, "[judge]\npass_threshold = 4\n")
        assert load_settings().judge.pass_threshold == 4

    def test_env_beats_file(self, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        write(clean_env, VALID_TOML)
        monkeypatch.setenv("ROUTEQ_JUDGE__PASS_THRESHOLD", "9")
        settings = load_settings()
        assert settings.judge.pass_threshold == 9
        # The nested env value merges into the file's section rather than replacing it.
        assert settings.judge.model is not None
        assert settings.judge.model.model == "judge-1"

    def test_keyword_beats_env(self, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        write(clean_env, VALID_TOML)
        monkeypatch.setenv("ROUTEQ_JUDGE__PASS_THRESHOLD", "9")
        settings = load_settings(judge={"pass_threshold": 2})
        assert settings.judge.pass_threshold == 2
        assert settings.judge.model is not None
        assert settings.judge.model.model == "judge-1"

    def test_top_level_env_beats_file(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(clean_env, VALID_TOML)
        monkeypatch.setenv("ROUTEQ_DATABASE_URL", "postgresql://env@h/db")
        assert load_settings().database_url == "postgresql+psycopg://env@h/db"

    def test_keyword_beats_env_top_level(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ROUTEQ_MAX_QUERY_CHARS", "100")
        assert load_settings().max_query_chars == 100
        assert load_settings(max_query_chars=7).max_query_chars == 7

    def test_invalid_env_value_is_a_config_error(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ROUTEQ_JUDGE__PASS_THRESHOLD", "11")
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "configuration (environment/defaults)" in message
        assert "judge.pass_threshold" in message

    def test_env_threshold_alone_keeps_default_judge_model(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ROUTEQ_JUDGE__PASS_THRESHOLD", "8")
        judge = load_settings().judge
        assert judge.pass_threshold == 8
        assert judge.model is not None


# -- errors ---------------------------------------------------------------------------------------


class TestFileErrors:
    def test_routeq_config_missing_file(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        missing = clean_env / "nope" / "routeq.toml"
        monkeypatch.setenv("ROUTEQ_CONFIG", str(missing))
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert str(missing) in message
        assert "not found" in message
        assert "ROUTEQ_CONFIG" in message

    def test_explicit_missing_file(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"missing\.toml: config file not found"):
            load_settings("missing.toml")

    def test_invalid_toml(self, clean_env: Path) -> None:
        path = write(clean_env, "[tiers\nname = 'x'\n", name="broken.toml")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        message = str(info.value)
        assert str(path) in message
        assert "not valid TOML" in message

    def test_undecodable_file(self, clean_env: Path) -> None:
        path = clean_env / "binary.toml"
        path.write_bytes(b"\xff\xfe\x00bad")
        with pytest.raises(ConfigError, match="cannot read config file"):
            load_settings(path)

    def test_validation_error_names_the_file(self, clean_env: Path) -> None:
        path = write(clean_env, "max_query_chars = 0\n")
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert message.startswith(f"{path.name}: invalid configuration")
        assert "max_query_chars" in message
        assert "(got 0)" in message

    def test_unknown_tier_key_is_rejected(self, clean_env: Path) -> None:
        write(clean_env, TIER_TOML + "contxt_window = 5\n")
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "tiers.0.contxt_window" in message
        assert "Extra inputs are not permitted" in message

    def test_unknown_top_level_key_is_rejected(self, clean_env: Path) -> None:
        write(clean_env, "databse_url = 'postgresql://h/db'\n")
        with pytest.raises(ConfigError, match="databse_url"):
            load_settings()

    def test_unknown_judge_key_is_rejected(self, clean_env: Path) -> None:
        write(clean_env, "[judge]\npass_treshold = 5\n")
        with pytest.raises(ConfigError, match=r"judge\.pass_treshold"):
            load_settings()

    def test_wrong_type_names_the_field(self, clean_env: Path) -> None:
        write(
            clean_env, TIER_TOML.replace("input_price_per_mtok = 1", 'input_price_per_mtok = "abc"')
        )
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "tiers.0.input_price_per_mtok" in message
        assert "'abc'" in message

    def test_negative_price_rejected(self, clean_env: Path) -> None:
        write(
            clean_env, TIER_TOML.replace("output_price_per_mtok = 2", "output_price_per_mtok = -1")
        )
        with pytest.raises(ConfigError, match=r"tiers\.0\.output_price_per_mtok"):
            load_settings()

    def test_missing_required_tier_fields(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(tiers=[{"name": "a"}])
        message = str(info.value)
        for field in ("provider", "base_url", "model", "context_window"):
            assert f"tiers.0.{field}: Field required" in message

    def test_empty_tier_list_rejected(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match="tiers"):
            load_settings(tiers=[])

    @pytest.mark.parametrize(
        "url", ["api.example.com/v1", "ftp://api.example.com", "https://", "http:// spaced"]
    )
    def test_bad_base_url(self, clean_env: Path, url: str) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(tiers=[tier_dict("a", base_url=url)])
        message = str(info.value)
        assert "tiers.0.base_url" in message
        assert "http:// or https:// URL" in message

    def test_base_url_trailing_slash_stripped(self, clean_env: Path) -> None:
        settings = load_settings(tiers=[tier_dict("a", base_url="http://host:1/v1///")])
        assert settings.tiers[0].base_url == "http://host:1/v1"

    def test_bad_provider(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"tiers\.0\.provider"):
            load_settings(tiers=[tier_dict("a", provider="gemini")])

    @pytest.mark.parametrize("name", ["Cheap", "-x", "", "a" * 41, "has space"])
    def test_bad_tier_name(self, clean_env: Path, name: str) -> None:
        with pytest.raises(ConfigError, match=r"tiers\.0\.name"):
            load_settings(tiers=[tier_dict(name)])

    def test_bad_api_key_env_name(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"tiers\.0\.api_key_env"):
            load_settings(tiers=[tier_dict("a", api_key_env="sk-not-a-name")])

    def test_duplicate_tier_names(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(tiers=[tier_dict("a"), tier_dict("b"), tier_dict("a")])
        message = str(info.value)
        assert "tier names must be unique" in message
        assert "repeated: a" in message


class TestRoutingValidation:
    def test_rule_with_unknown_tier(self, clean_env: Path) -> None:
        write(
            clean_env,
            TIER_TOML + '\n[[routing.rules]]\nname = "hard-stuff"\ntier = "frontier"\n',
        )
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "routing.rules[0]" in message
        assert "'hard-stuff'" in message
        assert "unknown tier 'frontier'" in message
        assert "known tiers: only" in message

    def test_rule_with_unknown_tier_lists_all_known(self, clean_env: Path) -> None:
        rules = [{"name": "ok", "tier": "cheap"}, {"name": "bad", "tier": "gpt9"}]
        with pytest.raises(ConfigError) as info:
            load_settings(routing={"rules": rules})
        message = str(info.value)
        assert "routing.rules[1] ('bad') names unknown tier 'gpt9'" in message
        assert "known tiers: cheap, mid, frontier" in message

    def test_default_tier_unknown(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(routing={"default_tier": "huge"})
        message = str(info.value)
        assert "routing.default_tier names unknown tier 'huge'" in message
        assert "cheap, mid, frontier" in message

    def test_bad_regex(self, clean_env: Path) -> None:
        write(
            clean_env,
            '[[routing.rules]]\nname = "r"\ntier = "mid"\nregex = ["ok", "(unclosed"]\n',
        )
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "routing.rules.0.regex" in message
        assert "'(unclosed'" in message
        assert "does not compile" in message

    def test_rule_config_regex_validator_directly(self) -> None:
        with pytest.raises(ValueError, match="does not compile"):
            RuleConfig(name="r", tier="mid", regex=["[a-"])

    def test_unknown_rule_key(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"routing\.rules\.0\.keyword"):
            load_settings(routing={"rules": [{"name": "r", "tier": "mid", "keyword": ["x"]}]})

    def test_unknown_policy(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"routing\.policy"):
            load_settings(routing={"policy": "learned"})

    def test_rule_metadata_must_be_strings(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"routing\.rules\.0\.metadata"):
            load_settings(routing={"rules": [{"name": "r", "tier": "mid", "metadata": {"k": 1}}]})


# -- worker / urls --------------------------------------------------------------------------------


class TestWorkerConfig:
    def test_derived_limits_are_ordered_and_fit_the_slowest_delivery(self, clean_env: Path) -> None:
        settings = load_settings()
        limits = settings.time_limits
        retry = settings.retry
        slowest = max(endpoint.timeout_s for endpoint in settings.endpoints)
        pauses = retry.max_retries * max(retry.backoff_max_s, retry.retry_after_max_s)
        assert limits.soft_s >= (1 + retry.max_retries) * slowest + pauses
        assert limits.soft_s < limits.hard_s
        assert limits.visibility_s > limits.hard_s + limits.longest_lease_s

    def test_derived_limits_follow_the_tiers(self, clean_env: Path) -> None:
        fast = load_settings().time_limits
        slow_tiers = [tier.model_copy(update={"timeout_s": 120.0}) for tier in default_tiers()]
        slow = load_settings(tiers=slow_tiers).time_limits
        assert slow.soft_s >= fast.soft_s + 4 * (120 - 10)

    def test_an_explicit_soft_limit_shorter_than_a_delivery_is_refused(
        self, clean_env: Path
    ) -> None:
        with pytest.raises(ConfigError, match=r"soft_time_limit_s .* shorter than the slowest"):
            load_settings(worker={"task_soft_time_limit_s": 30, "task_time_limit_s": 60})

    def test_a_visibility_timeout_below_hard_limit_plus_lease_is_refused(
        self, clean_env: Path
    ) -> None:
        with pytest.raises(ConfigError, match=r"visibility_timeout_s .* must exceed"):
            load_settings(worker={"task_time_limit_s": 400, "visibility_timeout_s": 420})

    def test_visibility_timeout_must_exceed_time_limit(self) -> None:
        with pytest.raises(ValueError, match="visibility_timeout_s must exceed task_time_limit_s"):
            WorkerConfig(task_time_limit_s=660, visibility_timeout_s=660)

    def test_soft_limit_must_be_below_hard_limit(self) -> None:
        with pytest.raises(ValueError, match="task_soft_time_limit_s must be below"):
            WorkerConfig(task_soft_time_limit_s=700, task_time_limit_s=700)

    def test_valid_custom_ordering(self) -> None:
        worker = WorkerConfig(
            task_soft_time_limit_s=10, task_time_limit_s=20, visibility_timeout_s=21
        )
        assert worker.visibility_timeout_s == 21

    def test_via_load_settings(self, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ROUTEQ_WORKER__TASK_SOFT_TIME_LIMIT_S", "5")
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "worker.task_soft_time_limit_s (5) is shorter than the slowest delivery" in message


class TestUrls:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
            ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
            ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ],
    )
    def test_database_url_normalised(self, clean_env: Path, given: str, expected: str) -> None:
        assert load_settings(database_url=given).database_url == expected

    @pytest.mark.parametrize(
        "url", ["mysql://u@h/d", "sqlite:///x.db", "postgresql+asyncpg://u@h/d", "h:5432/d"]
    )
    def test_non_postgres_database_url_rejected(self, clean_env: Path, url: str) -> None:
        with pytest.raises(ConfigError) as info:
            load_settings(database_url=url)
        message = str(info.value)
        assert "database_url" in message
        assert "PostgreSQL URL" in message

    @pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/1", "unix:///tmp/r.sock"])
    def test_redis_urls_accepted(self, clean_env: Path, url: str) -> None:
        assert load_settings(broker_url=url).broker_url == url

    def test_non_redis_broker_rejected(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"broker_url.*Redis URL"):
            load_settings(broker_url="amqp://guest@h//")


# -- secrets ---------------------------------------------------------------------------------------


class TestApiKey:
    def test_tier_stores_only_the_env_var_name(self) -> None:
        assert "api_key_env" in TierConfig.model_fields
        assert "api_key" not in TierConfig.model_fields
        assert "api_key" not in ModelEndpoint.model_fields

    def test_api_key_field_rejected(self, clean_env: Path) -> None:
        with pytest.raises(ConfigError, match=r"tiers\.0\.api_key"):
            load_settings(tiers=[tier_dict("a", api_key="sk-secret")])

    def test_api_key_read_at_call_time(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ROUTEQ_TEST_KEY", raising=False)
        tier = load_settings(tiers=[tier_dict("a", api_key_env="ROUTEQ_TEST_KEY")]).tiers[0]
        assert tier.api_key() is None
        monkeypatch.setenv("ROUTEQ_TEST_KEY", "sk-first")
        assert tier.api_key() == "sk-first"
        monkeypatch.setenv("ROUTEQ_TEST_KEY", "sk-rotated")
        assert tier.api_key() == "sk-rotated"

    def test_key_never_in_dump(self, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ROUTEQ_TEST_KEY", "sk-very-secret")
        settings = load_settings(tiers=[tier_dict("a", api_key_env="ROUTEQ_TEST_KEY")])
        assert "sk-very-secret" not in settings.model_dump_json()
        assert "sk-very-secret" not in repr(settings)

    def test_no_env_name_means_no_key(self) -> None:
        endpoint = ModelEndpoint(
            provider="openai",
            base_url="http://h",
            model="m",
            input_price_per_mtok=Decimal(0),
            output_price_per_mtok=Decimal(0),
        )
        assert endpoint.api_key() is None


# -- the ladder helpers ----------------------------------------------------------------------------


class TestLadder:
    @pytest.fixture
    def settings(self, clean_env: Path) -> Settings:
        return load_settings()

    def test_tier_lookup(self, settings: Settings) -> None:
        assert settings.tier("mid").model == "sim-medium"

    def test_unknown_tier_raises_config_error(self, settings: Settings) -> None:
        with pytest.raises(ConfigError) as info:
            settings.tier("gigantic")
        message = str(info.value)
        assert "unknown tier 'gigantic'" in message
        assert "known tiers: cheap, mid, frontier" in message

    def test_next_tier(self, settings: Settings) -> None:
        nxt = settings.next_tier("cheap")
        assert nxt is not None
        assert nxt.name == "mid"
        top = settings.next_tier("mid")
        assert top is not None
        assert top.name == "frontier"
        assert settings.next_tier("frontier") is None

    def test_top_tier(self, settings: Settings) -> None:
        assert settings.top_tier.name == "frontier"

    def test_largest_context_window(self, settings: Settings) -> None:
        assert settings.largest_context_window == 200_000

    def test_single_tier_ladder(self, clean_env: Path) -> None:
        settings = load_settings(tiers=[tier_dict("solo")])
        assert settings.top_tier.name == "solo"
        assert settings.next_tier("solo") is None

    def test_judge_config_threshold_bounds(self) -> None:
        with pytest.raises(ValueError):
            JudgeConfig(pass_threshold=0)
        with pytest.raises(ValueError):
            JudgeConfig(pass_threshold=11)
        assert JudgeConfig(pass_threshold=10).model is None
