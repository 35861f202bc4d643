"""``routeq.secrets``: scrubbing, key validation at load, the log filter, and what ``routeq check``
and ``routeq status`` print.

Every test plants a secret and asserts it appears nowhere in the resulting text, exception,
traceback or printed output, and that the redaction marker does (so a test cannot pass because
the text was simply dropped or folded across lines).
"""

from __future__ import annotations

import io
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from rich.console import Console

import routeq.check
import routeq.cli
import routeq.secrets
from routeq.check import CheckResult, print_checks, run_checks
from routeq.client import Result
from routeq.config import JudgeConfig, Settings, load_settings
from routeq.errors import ConfigError
from routeq.exitcodes import CommandFailed
from routeq.ledger.repository import HopView
from routeq.report import hops_table
from routeq.secrets import (
    REDACTED,
    SecretFilter,
    api_key_problem,
    configured_secrets,
    install_log_filter,
    register_secret_env,
    register_secrets,
    register_settings,
    registered_secrets,
    scrub,
)

KEY = "live-7f3a9c2e5b1d4a8f0e6c"  # not sk-shaped: only the known-secret path can catch it
SK_KEY = "sk-proj-Zx81Qw77Er65Ty43Ui21"
KEY_ENV = "ROUTEQ_TEST_SECRETS_KEY"
OTHER_ENV = "ROUTEQ_TEST_SECRETS_OTHER"


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    """Each test starts and ends with nothing registered, so none passes on another's secrets."""
    routeq.secrets.clear_registry()
    yield
    routeq.secrets.clear_registry()


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTEQ_CONFIG", raising=False)
    return tmp_path


def tier_dict(name: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": name,
        "provider": "openai",
        "base_url": "https://llm.example.test/v1",
        "model": f"model-{name}",
        "input_price_per_mtok": "1",
        "output_price_per_mtok": "2",
        "context_window": 8000,
    }
    return {**fields, **changes}


# -- scrub: known secrets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quoted",
    [
        KEY,
        KEY + "\n",
        repr(KEY + "\n")[1:-1],  # the key followed by the two characters \ and n
        repr((KEY + "\n").encode())[2:-1],
        '"' + (KEY + "\n").replace("\n", "\\n") + '"',  # in a JSON body
        quote(KEY + "\n", safe=""),
        quote(KEY, safe=""),
    ],
    ids=["as-is", "newline", "str-repr", "bytes-repr", "json", "percent-newline", "percent"],
)
def test_a_known_secret_is_removed_in_every_form(quoted: str) -> None:
    text = f"upstream said: {quoted} is not valid"

    scrubbed = scrub(text, [KEY + "\n"], generic=False)

    assert KEY not in scrubbed
    assert REDACTED in scrubbed
    assert scrubbed.startswith("upstream said: ") and scrubbed.endswith(" is not valid")


def test_registered_variables_are_read_at_scrub_time(monkeypatch: pytest.MonkeyPatch) -> None:
    register_secret_env([KEY_ENV, None])
    monkeypatch.setenv(KEY_ENV, KEY)
    assert scrub(f"key {KEY}", generic=False) == f"key {REDACTED}"

    monkeypatch.setenv(KEY_ENV, "rotated-key-000111")  # a rotated key is caught without a call

    assert scrub("key rotated-key-000111", generic=False) == f"key {REDACTED}"
    assert registered_secrets() == ["rotated-key-000111"]


def test_registered_values_are_scrubbed_and_short_values_ignored() -> None:
    register_secrets([KEY, None, "", "ab"])

    assert scrub(f"a {KEY} b", generic=False) == f"a {REDACTED} b"
    assert scrub("about a tab", generic=False) == "about a tab"
    assert scrub("about a tab", ["ab"], generic=False) == "about a tab"


def test_a_secret_containing_another_is_removed_whole() -> None:
    scrubbed = scrub(f"x {KEY}-extended y", [KEY, f"{KEY}-extended"], generic=False)

    assert scrubbed == f"x {REDACTED} y"


def test_the_pattern_is_compiled_once_per_set_of_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    routeq.secrets._known_pattern.cache_clear()
    register_secret_env([KEY_ENV])
    monkeypatch.setenv(KEY_ENV, KEY)
    for _ in range(50):
        scrub(f"key {KEY}")
    assert routeq.secrets._known_pattern.cache_info().misses == 1

    monkeypatch.setenv(KEY_ENV, "rotated-key-000111")
    assert scrub("rotated-key-000111") == REDACTED

    assert routeq.secrets._known_pattern.cache_info().misses == 2


# -- scrub: credential-shaped text -----------------------------------------------------------------

TOKEN = "opaque1tok2value3"

CREDENTIAL_TEXTS = [
    f"Authorization: Bearer {TOKEN}",
    f"proxy-authorization: Basic {TOKEN}",
    f"request headers: {{'authorization': 'Bearer {TOKEN}', 'accept': 'application/json'}}",
    f'{{"headers": {{"Authorization": "Bearer {TOKEN}"}}}}',
    f"x-api-key: {TOKEN}",
    f"{{'x-api-key': '{TOKEN}'}}",
    f"api_key={TOKEN}",
    f"Illegal header value b'Bearer {TOKEN}\\n'",
    f"Illegal header value b'{TOKEN} '",
    f"token rejected: Bearer {TOKEN}",
    f"Incorrect API key provided: {TOKEN}. You can find your API key at ...",
    f"GET https://user:{TOKEN}@llm.example/v1 failed",
    f"GET https://llm.example/v1?api_key={TOKEN}&x=1 failed",
    f"GET https://llm.example/v1?key={TOKEN} failed",
]


@pytest.mark.parametrize("text", CREDENTIAL_TEXTS)
def test_credential_shaped_text_is_redacted_without_knowing_the_secret(text: str) -> None:
    assert TOKEN in text  # the plant is there before

    scrubbed = scrub(text)

    assert TOKEN not in scrubbed
    assert REDACTED in scrubbed
    assert scrub(scrubbed) == scrubbed  # idempotent: the marker is never redacted again
    assert f"{REDACTED}]" not in scrubbed


@pytest.mark.parametrize(
    "key", [SK_KEY, "sk-ant-api03-AbCdEf0123456789xyz", "sk-or-v1-0123456789abcdef0123"]
)
def test_sk_style_keys_are_redacted_anywhere(key: str) -> None:
    scrubbed = scrub(f"Incorrect key {key}; see the docs")

    assert key not in scrubbed
    assert scrubbed == f"Incorrect key {REDACTED}; see the docs"


@pytest.mark.parametrize(
    "text",
    [
        "Bearer authentication failed: no token",
        "the api key is missing",
        "task-abcdefghijklmnopqrstuvwxyz finished",
        "risk-assessment-of-the-whole-thing",
        "HTTP 401: invalid_api_key",
        "model sk-small is not available",
        "cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:9/x",  # safe_url's mask
        "cannot reach Redis at unix:///run/redis.sock?db=0&password=***",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert scrub(text) == text


def test_generic_false_keeps_examples_but_not_known_secrets() -> None:
    answer = f"Send Authorization: Bearer {TOKEN} (your key is {KEY})"

    scrubbed = scrub(answer, [KEY], generic=False)

    assert f"Authorization: Bearer {TOKEN}" in scrubbed
    assert KEY not in scrubbed


# -- API key values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (KEY + "\n", "ends with a newline; write it without one: printf '%s'"),
        (KEY + "\r\n", "ends with a newline"),
        (" " + KEY, "starts with whitespace"),
        (KEY + " ", "ends with whitespace"),
        (KEY + "\t", "ends with whitespace"),
        (KEY[:5] + "\n" + KEY[5:], "contains a line break at character 6"),
        (KEY[:5] + "\x01" + KEY[5:], "contains a control character (U+0001) at character 6"),
        (KEY[:5] + "\x7f" + KEY[5:], "contains a control character (U+007F)"),
        (KEY[:5] + " " + KEY[5:], "contains a space at character 6"),
        (KEY[:5] + "\u00e9" + KEY[5:], "contains a non-ASCII character at character 6"),
        (KEY[:5] + "\u200b" + KEY[5:], "contains a non-ASCII character"),
    ],
    ids=[
        "newline",
        "crlf",
        "leading-space",
        "trailing-space",
        "trailing-tab",
        "inner-newline",
        "control",
        "delete",
        "inner-space",
        "non-ascii",
        "zero-width",
    ],
)
def test_unsendable_key_values_are_named_by_variable_only(value: str, fragment: str) -> None:
    problem = api_key_problem("OPENAI_API_KEY", value)

    assert problem is not None
    assert problem.startswith("OPENAI_API_KEY ")
    assert fragment in problem
    assert KEY[:5] not in problem and KEY[5:] not in problem


@pytest.mark.parametrize("value", ["", KEY, SK_KEY, "sk-ant-api03-a_b-c.d~e+f/g="])
def test_sendable_key_values_pass(value: str) -> None:
    assert api_key_problem("OPENAI_API_KEY", value) is None


def test_a_key_with_a_newline_fails_loading_naming_the_variable(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY + "\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(
            tiers=[tier_dict("cheap", api_key_env=KEY_ENV), tier_dict("mid", api_key_env=KEY_ENV)]
        )

    text = str(caught.value)
    shown = "".join(traceback.format_exception(caught.value))
    assert f"{KEY_ENV} ends with a newline; write it without one: printf '%s'" in text
    assert "tier cheap, tier mid" in text
    assert text.count(KEY_ENV + " ends with") == 1  # one problem per variable
    assert KEY not in shown and KEY[:8] not in shown


def test_the_judge_models_key_is_validated_too(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OTHER_ENV, " " + KEY)
    judge_model = {**tier_dict("j"), "api_key_env": OTHER_ENV}
    for field in ("name", "context_window"):
        judge_model.pop(field)

    with pytest.raises(ConfigError) as caught:
        load_settings(tiers=[tier_dict("cheap")], judge={"model": judge_model})

    assert f"{OTHER_ENV} starts with whitespace" in str(caught.value)
    assert "(used by judge.model)" in str(caught.value)
    assert KEY not in str(caught.value)


def test_unset_and_clean_keys_load_and_register_their_variables(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(OTHER_ENV, KEY)

    settings = load_settings(
        tiers=[tier_dict("cheap", api_key_env=KEY_ENV), tier_dict("mid", api_key_env=OTHER_ENV)]
    )

    assert settings.tier_names == ["cheap", "mid"]
    # Loading registered the variables: text scrubbed anywhere in the process loses the key.
    assert scrub(f"echoed {KEY}", generic=False) == f"echoed {REDACTED}"


def test_configured_secrets_are_the_set_key_values(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(OTHER_ENV, SK_KEY)
    monkeypatch.delenv("ROUTEQ_TEST_SECRETS_UNSET", raising=False)
    judge_model = {**tier_dict("j"), "api_key_env": OTHER_ENV}
    for field in ("name", "context_window"):
        judge_model.pop(field)
    settings = load_settings(
        tiers=[
            tier_dict("a", api_key_env=KEY_ENV),
            tier_dict("b", api_key_env="ROUTEQ_TEST_SECRETS_UNSET"),
            tier_dict("c", api_key_env=KEY_ENV),
            tier_dict("d"),
        ],
        judge={"enabled": False, "model": judge_model},
    )

    assert configured_secrets(settings) == [KEY, SK_KEY]


def test_register_settings_registers_url_passwords(no_config: Path) -> None:
    settings = load_settings(
        database_url="postgresql://routeq:db-pass-Zq7-secret@db:5432/routeq",
        broker_url="redis://:redis%2Fpass-Kx9@redis:6379/0",
    )

    register_settings(settings)

    text = scrub("auth failed for db-pass-Zq7-secret and redis/pass-Kx9", generic=False)
    assert "db-pass-Zq7-secret" not in text and "redis/pass-Kx9" not in text


# -- logging ---------------------------------------------------------------------------------------


@pytest.fixture
def captured_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.getLogger(f"routeq.test.secrets.{uuid.uuid4().hex}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_log_filter_scrubs_messages_args_and_tracebacks(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured_logger
    register_secrets([KEY])
    install_log_filter(logger)

    logger.warning("calling with %s and %r", KEY, {"authorization": f"Bearer {TOKEN}"})
    try:
        raise RuntimeError(f"upstream echoed {KEY}")
    except RuntimeError:
        logger.exception("call failed")
    logger.info("stack", stack_info=True, extra={"unused": KEY})

    output = stream.getvalue()
    assert KEY not in output and TOKEN not in output
    assert output.count(REDACTED) >= 3
    assert "RuntimeError: upstream echoed [REDACTED]" in output  # the traceback is still shown


def test_log_filter_on_a_logger_covers_records_from_its_children(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured_logger
    register_secrets([KEY])
    install_log_filter(logger)
    child = logging.getLogger(logger.name + ".child")

    child.error("child saw %s", KEY)

    assert KEY not in stream.getvalue()
    assert f"child saw {REDACTED}" in stream.getvalue()


def test_installing_twice_adds_one_filter(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, _ = captured_logger
    install_log_filter(logger)
    install_log_filter([logger, *logger.handlers])

    for target in [logger, *logger.handlers]:
        assert sum(isinstance(f, SecretFilter) for f in target.filters) == 1


def test_log_filter_clears_args() -> None:
    register_secrets([KEY])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (KEY,), None)

    assert SecretFilter().filter(record)

    assert record.msg == f"key {REDACTED}" and record.args is None
    assert record.getMessage() == f"key {REDACTED}"


# -- routeq check ----------------------------------------------------------------------------------


def printed_checks(results: list[CheckResult]) -> str:
    buffer = io.StringIO()
    print_checks(Console(file=buffer, width=1000, color_system=None), results)
    return buffer.getvalue()


def test_print_checks_scrubs_details() -> None:
    register_secrets([KEY])

    output = printed_checks([CheckResult("tier cheap", False, f"HTTP 401: bad key {KEY}")])

    assert KEY not in output
    assert f"bad key {REDACTED}" in output


@pytest.fixture
def mocked_http(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[..., httpx.Response]], None]:
    """Make routeq check's probes answer through a MockTransport handler."""
    real_client = httpx.Client

    def install(handler: Callable[[httpx.Request], httpx.Response]) -> None:
        def client(**kwargs: Any) -> httpx.Client:
            return real_client(transport=httpx.MockTransport(handler), **kwargs)

        monkeypatch.setattr(routeq.check.httpx, "Client", client)

    return install


def check_settings(**tier_changes: Any) -> Settings:
    return Settings(
        tiers=[tier_dict("cheap", **tier_changes)],
        judge=JudgeConfig(enabled=False),
        database_url=None,
        broker_url=None,
    )


def test_check_does_not_show_a_key_the_provider_echoes(
    no_config: Path, monkeypatch: pytest.MonkeyPatch, mocked_http: Any
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    mocked_http(
        lambda request: httpx.Response(
            401, json={"error": {"message": f"The key {KEY} was revoked"}}
        )
    )

    results = run_checks(check_settings(api_key_env=KEY_ENV), timeout_s=1.0)

    [cheap] = [result for result in results if result.name == "tier cheap"]
    assert not cheap.ok
    assert f"The key {REDACTED} was revoked" in cheap.detail
    assert f"check the API key in {KEY_ENV}" in cheap.detail
    assert KEY not in printed_checks(results)


def test_check_names_a_key_changed_after_loading(
    no_config: Path, monkeypatch: pytest.MonkeyPatch, mocked_http: Any
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    mocked_http(answer)
    settings = check_settings(api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, KEY + "\n")  # after load: the config validator could not see it

    [cheap] = [r for r in run_checks(settings, timeout_s=1.0) if r.name == "tier cheap"]

    assert not cheap.ok
    assert f"{KEY_ENV} ends with a newline" in cheap.detail
    assert KEY not in cheap.detail
    assert sent == []


# -- routeq status (_print_result) -----------------------------------------------------------------


def hop(seq: int, **changes: Any) -> HopView:
    fields: dict[str, Any] = {
        "seq": seq,
        "kind": "call",
        "tier": "cheap",
        "model": "m",
        "status": "failed",
        "attempts": 1,
        "input_tokens": None,
        "output_tokens": None,
        "tokens_estimated": False,
        "cost": Decimal(0),
        "latency_ms": None,
        "judge_score": None,
        "passed": None,
        "reason": None,
        "error": None,
    }
    return HopView(**{**fields, **changes})


def leaky_result() -> Result:
    return Result(
        query_id=uuid.uuid4(),
        status="failed",
        answer=f"the key is {KEY}; send Authorization: Bearer {TOKEN}",
        final_tier="cheap",
        final_model="m",
        reason=f"PermanentProviderError: HTTP 401: Incorrect API key provided: {SK_KEY}",
        total_cost=Decimal(0),
        hops=[
            hop(1, error=f"LocalProtocolError: Illegal header value b'Bearer {KEY}\\n'"),
            hop(2, reason=f"judge: the answer quotes {KEY}", kind="judge"),
        ],
    )


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_status_output_is_scrubbed(monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    register_secret_env([KEY_ENV])  # what loading the configuration does in `routeq status`
    buffer = io.StringIO()
    console = Console(file=buffer, width=1000, color_system=None)
    # Control: unscrubbed, this console shows the planted key whole (nothing folds it away).
    console.print(hops_table(leaky_result().hops))
    assert KEY in buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    monkeypatch.setattr(routeq.cli, "console", console)

    # The query failed: the command exits 1 with its reason on stderr, scrubbed as well.
    with pytest.raises(CommandFailed) as failed:
        routeq.cli._print_result(leaky_result(), as_json)
    assert failed.value.reasons and SK_KEY not in " ".join(failed.value.reasons)
    assert "[REDACTED]" in failed.value.reasons[0]

    output = buffer.getvalue()
    assert KEY not in output
    assert SK_KEY not in output
    assert REDACTED in output
    assert "Incorrect API key provided: [REDACTED]" in output
    # A credential-shaped example in an answer is kept; only known secrets leave the answer.
    assert f"Authorization: Bearer {TOKEN}" in output
