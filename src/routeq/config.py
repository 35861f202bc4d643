"""Configuration: one ``Settings`` object, read from ``routeq.toml`` and ``ROUTEQ_*`` variables.

Precedence, highest first: keyword arguments, environment variables (``ROUTEQ_DATABASE_URL``,
``ROUTEQ_JUDGE__PASS_THRESHOLD``, ...), the config file (``$ROUTEQ_CONFIG`` or ``./routeq.toml``),
then the defaults here. The defaults describe a three-tier ladder on routeq's simulated model server
so that nothing needs configuring to try routeq.

Every check happens at load time: a malformed file fails at start with the file, the field and
what was expected, never in the middle of a batch.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
import tomllib
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from routeq.errors import ConfigError
from routeq.secrets import api_key_problem, register_secret_env
from routeq.summary_spec import SummarySpec
from routeq.timing import (
    MAX_ERROR_COUNTDOWN_S,
    TIME_LIMIT_MARGIN_S,
    TimeLimits,
    check_time_limits,
    derive_time_limits,
)

CONFIG_ENV_VAR = "ROUTEQ_CONFIG"
DEFAULT_CONFIG_FILE = "routeq.toml"
DEFAULT_SIM_URL = "http://127.0.0.1:8765/v1"

ESCALATE_TOKEN = "[ESCALATE]"
CHEAP_TIER_SYSTEM_PROMPT = (
    "You are a concise, careful assistant. If you are not confident that you can answer the "
    f"question correctly, reply with exactly {ESCALATE_TOKEN} and nothing else."
)

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class _Strict(BaseModel):
    """Config sections reject unknown keys: a typo must fail loudly, not be ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEndpoint(_Strict):
    """How to reach one model and what it costs. The API key is named, never stored."""

    provider: Literal["openai", "anthropic"] = Field(
        description="'openai' for any OpenAI-compatible chat completions API, or 'anthropic'."
    )
    base_url: str = Field(description="API root, e.g. https://api.openai.com/v1")
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the API key (not the key).",
    )
    input_price_per_mtok: Decimal = Field(ge=0, description="USD per million input tokens")
    output_price_per_mtok: Decimal = Field(ge=0, description="USD per million output tokens")
    timeout_s: float = Field(default=60.0, gt=0)
    max_output_tokens: int = Field(default=1024, gt=0)
    # The provider's limits for this model, shared by every worker (``worker.guard``): work is
    # held back instead of being sent into 429s. Unset: no limit of routeq's own.
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(
        default=None, gt=0, description="prompt tokens plus the output allowance, per minute"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// URL, e.g. https://api.openai.com/v1")
        return value.rstrip("/")

    def api_key(self) -> str | None:
        """The key, read from the environment at call time so it is never kept in config."""
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env)


class TierConfig(ModelEndpoint):
    """One rung of the ladder. Tiers are listed cheapest first; the last one is the top tier."""

    name: str = Field(pattern=_NAME_PATTERN)
    context_window: int = Field(gt=0, description="tokens the model accepts (input + output)")
    token_margin: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="fraction added to routeq's token counts where fitting the window is decided: "
        "the model's own tokenizer may count more (a small open model counted 18% more)",
    )
    max_concurrency: int = Field(default=4, gt=0, description="worker processes for this queue")
    judge: bool = Field(default=True, description="judge this tier's answers (False accepts them)")
    judge_fail_mode: Literal["open", "closed", "wait"] = Field(
        default="open",
        description="when the judge itself fails: 'open' accepts the answer, 'closed' escalates, "
        "'wait' holds the answer until the judge is back (at most protection.wait_deadline_s, "
        "then escalates)",
    )
    system_prompt: str | None = None
    fallbacks: list[ModelEndpoint] = Field(
        default_factory=list,
        description="endpoints of similar strength tried, in order, when this one's breaker is "
        "open or its call failed, before the query escalates",
    )
    balance: Literal["order", "price"] = Field(
        default="order",
        description="'order': the tier's own endpoint first, then the fallbacks as listed; "
        "'price': the cheapest first",
    )

    @property
    def endpoints(self) -> list[ModelEndpoint]:
        """The tier's endpoints in the order a call tries them."""
        own = ModelEndpoint.model_validate(self.model_dump(include=set(ModelEndpoint.model_fields)))
        chain = [own, *self.fallbacks]
        if self.balance == "price":
            chain.sort(key=lambda e: e.input_price_per_mtok + e.output_price_per_mtok)
        return chain

    @property
    def queue(self) -> str:
        """The Celery queue this tier's workers consume."""
        return f"tier.{self.name}"


class VerifierConfig(_Strict):
    """``[judge.verifier]``: a trained cascade verifier (``routeq train --policy
    cascade-verifier``) reads each cheap answer after the heuristic checks; an answer it
    trusts less than ``min_p_good`` fails, and the query escalates without asking the judge."""

    artifact: Path = Field(description="the trained cascade-verifier artifact")
    min_p_good: float = Field(
        default=0.5, ge=0, le=1, description="answers predicted good with less than this fail"
    )
    tiers: list[str] | None = Field(
        default=None, description="tiers whose answers it reads; default: all but the top tier"
    )


class JudgeConfig(_Strict):
    """How answers are scored. Heuristic checks always run when judging is on; the LLM judge
    runs after them when ``model`` is set."""

    enabled: bool = True
    pass_threshold: int = Field(default=6, ge=1, le=10)
    verifier: VerifierConfig | None = None
    model: ModelEndpoint | None = None
    rubric: str = (
        "Score the answer from 1 (useless or wrong) to 10 (correct, complete, well explained) "
        "for the question asked. Reply with JSON only: "
        '{"score": <integer 1-10>, "reason": "<one sentence>"}'
    )
    context_window: int | None = Field(
        default=None,
        gt=0,
        description="tokens the judge model accepts (input + output); when set, a source or "
        "question too long for it is shortened (head and tail kept) so the judge still runs",
    )
    token_margin: float = Field(
        default=0.2, ge=0, le=1, description="as a tier's: added to counts when fitting the window"
    )
    summary_rubric: str = (
        "Score the summary from 1 (unfaithful: states things the text does not, or misses its "
        "point) to 10 (faithful, covers the main points, concise) for the text and instructions "
        'given. Reply with JSON only: {"score": <integer 1-10>, "reason": "<one sentence>"}'
    )


class RuleConfig(_Strict):
    """One routing rule. Every condition given must hold; a rule with none always matches."""

    name: str = Field(min_length=1)
    tier: str
    keywords: list[str] = Field(
        default_factory=list, description="any of these words (case-insensitive)"
    )
    regex: list[str] = Field(default_factory=list, description="any of these patterns matches")
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    forbid_chars: str = Field(
        default="", description="the rule fails if any of these characters occurs"
    )
    metadata: dict[str, str] = Field(default_factory=dict, description="exact matches on metadata")
    user: str | None = None
    task: Literal["answer", "summarize"] | None = Field(
        default=None, description="only queries of this task (summarize: batch summaries)"
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regular expression {pattern!r} does not compile: {exc}") from exc
        return patterns


class NamedConfig(BaseModel):
    """The section of a pluggable component (a routing policy, an escalation policy): ``name``
    picks the component in its registry, and the other keys are validated by that component's
    own config class. Together the registered classes form a union discriminated by ``name``;
    a new component is one module with its config class (``register_component_config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str

    def problems(self, tier_names: list[str]) -> list[str]:
        """What is wrong with this section for the configured ladder (unknown tiers, say)."""
        return []


# Registered component config classes by (kind, name): kind is "policy" or "escalation".
_COMPONENT_CONFIGS: dict[tuple[str, str], type[NamedConfig]] = {}
# Modules that register the built-in components when imported.
BUILTIN_PLUGINS = ("routeq.policies", "routeq.learned.configs")


def register_component_config(kind: str, config: type[NamedConfig]) -> None:
    """Make ``config`` the section class of the ``kind`` component named by its ``name``
    default (``name: Literal["x"] = "x"``)."""
    name = config.model_fields["name"].default
    if not isinstance(name, str):
        raise TypeError(f"{config.__name__}.name needs a default: the component's name")
    _COMPONENT_CONFIGS[(kind, name)] = config


def load_plugins(modules: list[str]) -> None:
    """Import the modules that register components: the built-in ones, then ``modules``.
    A plugin module is found on ``sys.path`` or in the current directory (as ``python -m``
    would find it; the ``routeq`` command's own script does not put it there)."""
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    for module in (*BUILTIN_PLUGINS, *modules):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"cannot import plugin module {module!r}: {error}") from error


def component_config(kind: str, value: Any) -> NamedConfig:
    """Validate a component section: a name (``policy = "rules"``) or a table with ``name``.
    The built-in components register themselves when first needed, here."""
    if isinstance(value, NamedConfig):
        return value
    load_plugins([])
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError(f"expected a {kind} name, or a table with a 'name' key")
    config = _COMPONENT_CONFIGS.get((kind, value["name"]))
    if config is None:
        known = ", ".join(sorted(name for k, name in _COMPONENT_CONFIGS if k == kind))
        raise ValueError(
            f"unknown {kind} {value['name']!r}; known: {known} (a plugin module listed in "
            "routing.plugins can register more)"
        )
    return config.model_validate(value)


class FirstQueriesConfig(_Strict):
    """``[routing.first_queries]``: a user's first ``count`` queries (their role-``answer``
    queries on the ledger) go to ``tier``, after the configured rules and before the policy,
    so a new user's first impression is the strong model's. ``count = 0`` turns it off."""

    count: int = Field(default=10, ge=0, description="how many first queries; 0: off")
    tier: str | None = Field(default=None, description="defaults to the top tier")


class RoutingConfig(_Strict):
    """How the route step picks a tier, and how a failed answer escalates.

    ``rules`` run first whatever the policy; the policy decides what they leave. For the rules
    policy (the default) ``rules = None`` means routeq's starter rules (see policies.rules).
    ``plugins`` are modules imported at load that register more policies (or hooks).
    ``first_queries`` (off when absent) sends new users' first queries to a strong tier."""

    plugins: list[str] = Field(default_factory=list)
    policy: SerializeAsAny[NamedConfig] = Field(
        default_factory=lambda: component_config("policy", "rules")
    )
    escalation: SerializeAsAny[NamedConfig] = Field(
        default_factory=lambda: component_config("escalation", "next-tier")
    )
    rules: list[RuleConfig] | None = None
    default_tier: str | None = Field(default=None, description="defaults to the middle tier")
    first_queries: FirstQueriesConfig | None = None
    # Labels for training come only from the tiers a query was sent to; exploring a small share
    # gives every tier labels on a random sample (docs/training-data.md).
    explore_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of user queries sent to a tier drawn at random (by a hash of the "
        "query id) instead of the policy's choice; configured rules still win",
    )

    @field_validator("plugins")
    @classmethod
    def _import_plugins(cls, modules: list[str]) -> list[str]:
        """Import the plugin modules first (fields validate in order), so that the components
        they register are known when ``policy`` and ``escalation`` validate."""
        load_plugins(modules)
        return modules

    @field_validator("policy", "escalation", mode="before")
    @classmethod
    def _component_section(cls, value: Any, info: ValidationInfo) -> NamedConfig:
        assert info.field_name is not None
        return component_config(info.field_name, value)


class RetryConfig(_Strict):
    """Provider retries inside one delivery, and the cap on deliveries of one hop."""

    max_retries: int = Field(default=3, ge=0, le=20, description="extra HTTP attempts per delivery")
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=20.0, ge=0)
    retry_after_max_s: float = Field(default=60.0, ge=0)
    max_deliveries: int = Field(default=3, ge=1, description="claims of one hop before it fails")


class AlertsConfig(_Strict):
    """Limits ``routeq report --check`` enforces (ops/prometheus/routeq-alerts.yml has the same).

    A rate is a share (0-1; 1 never alerts); a cost or latency limit is off until set. The
    escalation default: past 30%, the cheap tier is too weak for the traffic or the router too
    eager, and escalating costs more than routing up would have.
    """

    max_escalation_rate: float | None = Field(default=0.30, ge=0, le=1)
    max_error_rate: float | None = Field(
        default=0.05, ge=0, le=1, description="provider requests that failed, of all requests"
    )
    max_unjudged_share: float | None = Field(
        default=0.05, ge=0, le=1, description="answers kept although the judge failed"
    )
    max_failed_share: float | None = Field(default=0.02, ge=0, le=1)
    max_cost_per_query: float | None = Field(default=None, gt=0, description="USD")
    max_p99_latency_s: float | None = Field(default=None, gt=0, description="end to end")
    min_queries: int = Field(
        default=20, ge=1, description="fewer queries in the period than this: no rate is judged"
    )
    max_shadow_quality_drop: float | None = Field(
        default=0.03,
        ge=0,
        le=1,
        description="how much better (0-1 quality) shadow answers may be than the answers kept",
    )
    min_shadows: int = Field(
        default=20, ge=1, description="fewer shadow comparisons than this: no quality drop judged"
    )


class ShadowConfig(_Strict):
    """Shadow A/B sampling (docs/shadow.md): a share of accepted answers is answered again, in
    the background, on a stronger tier, and both answers are judged, so the report can say how
    often the cheaper answer was as good, rather than assume it.

    Off by default: every shadow is a paid call on a dearer tier, so turning it on is a choice.
    ``share`` is then the sampled part of the answers accepted below the target tier.
    """

    enabled: bool = False
    share: float = Field(default=0.05, ge=0, le=1)
    tier: str = Field(
        default="top", description='"next" (one tier up), "top", or a tier name', min_length=1
    )
    priority: int = Field(
        default=9,
        ge=0,
        le=9,
        description="Redis message priority of shadow hops: 0 goes first, 9 after everything",
    )
    pairwise: bool = Field(
        default=False,
        description="also ask the judge which of the two answers is better (one more judge call)",
    )


class ProtectionConfig(_Strict):
    """Circuit breakers and waiting (docs/reliability.md, "Protecting providers").

    An endpoint whose attempts fail ``breaker_failures`` times in a row (connection errors,
    timeouts, 5xx) is left alone for ``breaker_open_s``; then one call probes it. A call whose
    endpoints are all out of capacity (rate limits spent, a ``Retry-After`` running), or all
    behind open breakers on the top tier (nothing above to escalate to), waits without using a
    delivery, for at most ``wait_deadline_s`` from the hop's creation; past that it goes on as
    after a failed call. Below the top, an open breaker is passed over like a failed call."""

    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)
    wait_deadline_s: float = Field(default=120.0, ge=0)
    max_inline_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="a claimed call waits this long at most for rate-limit capacity before "
        "trying its next endpoint",
    )


class BudgetConfig(_Strict):
    """``[[spend.budgets]]``: a spend limit over a period for one scope (docs/budgets.md).

    ``scope`` says whose spend: a ``user``'s, a metadata ``tag``'s (the value of metadata key
    ``tag``), an ``api_key``'s (the id a gateway submits with) or a ``batch``'s. With
    ``subject`` set, only that user, tag value, key or batch is limited; unset, each one has its
    own limit. A call is reserved at its worst-case cost before it is sent and settled at its
    real cost after, so concurrent queries cannot overspend."""

    name: str = Field(pattern=_NAME_PATTERN)
    scope: Literal["user", "tag", "api_key", "batch"]
    tag: str | None = Field(default=None, min_length=1, description="the metadata key (tag)")
    subject: str | None = Field(default=None, min_length=1)
    limit_usd: Decimal = Field(gt=0)
    period: Literal["day", "week", "month", "total"] = "day"
    on_exceed: Literal["fail", "cheaper"] = Field(
        default="fail",
        description="'fail': the call is refused and the query fails (keeping an earlier "
        "answer, if it has one); 'cheaper': the call moves to the strongest cheaper tier whose "
        "worst case fits what is left",
    )

    @model_validator(mode="after")
    def _tag_for_tags(self) -> BudgetConfig:
        if (self.scope == "tag") != (self.tag is not None):
            raise ValueError("'tag' names the metadata key of a budget with scope = \"tag\" (only)")
        return self


class SpendConfig(_Strict):
    """``[spend]``: budgets and the most one query may cost. Off until configured."""

    max_cost_per_query: Decimal | None = Field(
        default=None, gt=0, description="USD: a call that could take a query past it is refused"
    )
    budgets: list[BudgetConfig] = Field(default_factory=list)

    @field_validator("budgets")
    @classmethod
    def _unique_names(cls, budgets: list[BudgetConfig]) -> list[BudgetConfig]:
        names = [budget.name for budget in budgets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"budget names must be unique; repeated: {', '.join(repeated)}")
        return budgets


RedactedKind = Literal["email", "key", "number"]


def _all_redacted_kinds() -> list[RedactedKind]:
    return ["email", "key", "number"]


class PrivacyTag(_Strict):
    """``[[privacy.tags]]``: queries whose metadata ``tag`` equals ``value`` use ``mode``."""

    tag: str = Field(min_length=1)
    value: str
    mode: Literal["full", "redact", "none"]


class PrivacyConfig(_Strict):
    """``[privacy]``: what of prompts and answers is stored (``routeq.privacy``,
    docs/privacy.md), and how long texts are kept."""

    mode: Literal["full", "redact", "none"] = "full"
    redact: list[RedactedKind] = Field(
        default_factory=_all_redacted_kinds,
        description="built-in patterns replaced in redact mode",
    )
    patterns: list[str] = Field(
        default_factory=list, description="more regular expressions replaced in redact mode"
    )
    tags: list[PrivacyTag] = Field(default_factory=list)
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="texts of queries created longer ago are erased by the reconciler (their "
        "hashes, token counts, costs and verdicts are kept); unset: kept",
    )
    answer_hold_s: float = Field(
        default=3600.0,
        ge=0,
        description="mode none: how long a final answer stays readable after its query closes",
    )

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
            if compiled.match(""):
                raise ValueError(f"pattern {pattern!r} matches empty text")
        return patterns


class WorkerConfig(_Strict):
    """Leases, Celery's time limits and the reconciler (docs/reliability.md).

    The three time limits default to values derived from the tiers' timeouts and the retry
    policy (``routeq.timing``); set them only to override, and they are checked against what the
    tiers need.
    """

    task_soft_time_limit_s: int | None = Field(default=None, gt=0)
    task_time_limit_s: int | None = Field(default=None, gt=0)
    visibility_timeout_s: int | None = Field(default=None, gt=0)
    step_lease_s: float = Field(
        default=30.0, gt=0, description="lease of a claimed hop for the step's own work"
    )
    task_events: bool = Field(
        default=False,
        description="Celery task events from the start (about 4 Redis publishes per hop); "
        "Flower turns them on in the workers it watches anyway",
    )
    lease_margin_s: float = Field(
        default=5.0, ge=0, description="slack added to each provider attempt's lease"
    )
    reconcile_interval_s: float = Field(
        default=10.0, gt=0, description="how often the reconciler runs (Celery beat)"
    )
    reconcile_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="a live hop untouched this long is checked for a lost message",
    )
    reconcile_batch: int = Field(
        default=1000, gt=0, description="hops and queries the reconciler handles per run"
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="the embedded default's own workers: how long running calls may finish "
        "when the command stops, before they are killed and their hops handed back",
    )

    @model_validator(mode="after")
    def _ordered(self) -> WorkerConfig:
        soft, hard = self.task_soft_time_limit_s, self.task_time_limit_s
        if soft is not None and hard is not None and soft >= hard:
            raise ValueError("task_soft_time_limit_s must be below task_time_limit_s")
        if (
            hard is not None
            and self.visibility_timeout_s is not None
            and self.visibility_timeout_s <= hard
        ):
            raise ValueError(
                "visibility_timeout_s must exceed task_time_limit_s, or Redis redelivers "
                "tasks that are still running"
            )
        return self


class SummarizeConfig(_Strict):
    """Batch summarization: the default summary and how long documents are split."""

    spec: SummarySpec = Field(default_factory=SummarySpec)
    max_chunk_tokens: int = Field(
        default=3000,
        ge=200,
        description="documents longer than this (or than the routed tier's window) are split "
        "into parts summarised in parallel, then combined",
    )
    overlap_sentences: int = Field(
        default=1, ge=0, le=5, description="sentences repeated at the start of the next part"
    )


def default_tiers(sim_url: str = DEFAULT_SIM_URL) -> list[TierConfig]:
    """Three tiers on the simulated server, priced like real small/medium/frontier models."""
    common: dict[str, Any] = {"provider": "openai", "base_url": sim_url, "timeout_s": 10.0}
    return [
        TierConfig(
            name="cheap",
            model="sim-small",
            input_price_per_mtok=Decimal("0.15"),
            output_price_per_mtok=Decimal("0.60"),
            context_window=16_000,
            system_prompt=CHEAP_TIER_SYSTEM_PROMPT,
            **common,
        ),
        TierConfig(
            name="mid",
            model="sim-medium",
            input_price_per_mtok=Decimal("1.00"),
            output_price_per_mtok=Decimal("4.00"),
            context_window=64_000,
            **common,
        ),
        TierConfig(
            name="frontier",
            model="sim-large",
            input_price_per_mtok=Decimal("5.00"),
            output_price_per_mtok=Decimal("15.00"),
            context_window=200_000,
            **common,
        ),
    ]


def default_judge(sim_url: str = DEFAULT_SIM_URL) -> JudgeConfig:
    """The LLM judge on the simulated server."""
    return JudgeConfig(
        model=ModelEndpoint(
            provider="openai",
            base_url=sim_url,
            model="sim-judge",
            input_price_per_mtok=Decimal("0.15"),
            output_price_per_mtok=Decimal("0.60"),
            timeout_s=10.0,
        )
    )


_file_data: ContextVar[dict[str, Any] | None] = ContextVar("routeq_config_file", default=None)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Feeds the parsed config file to pydantic-settings below the environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_file_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get() or {})


class Settings(BaseSettings):
    """Everything routeq needs to run. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="ROUTEQ_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means the embedded Postgres"
    )
    broker_url: str | None = Field(default=None, description="Redis URL; unset means embedded")
    state_dir: Path = Field(
        default=Path(".routeq"), description="embedded servers' data lives here"
    )
    max_query_chars: int = Field(default=1_000_000, gt=0)
    tiers: list[TierConfig] = Field(default_factory=default_tiers, min_length=1)
    judge: JudgeConfig = Field(default_factory=default_judge)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    summarize: SummarizeConfig = Field(default_factory=SummarizeConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    protection: ProtectionConfig = Field(default_factory=ProtectionConfig)
    spend: SpendConfig = Field(default_factory=SpendConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    config_file: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _default_judge_model(cls, data: Any) -> Any:
        """Partial judge settings (a threshold, say) keep the simulated judge of the default
        ladder. A configured ladder gets an LLM judge only when ``judge.model`` is given."""
        if isinstance(data, dict) and "tiers" not in data:
            judge = data.get("judge")
            if isinstance(judge, dict) and "model" not in judge:
                data = {**data, "judge": {**judge, "model": default_judge().model}}
        return data

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Accept plain postgres:// URLs and pin the psycopg 3 driver."""
        if value is None:
            return None
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        raise ValueError("expected a PostgreSQL URL such as postgresql://user@host:5432/dbname")

    @field_validator("broker_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value.startswith(
            ("redis://", "rediss://", "redis+socket://", "unix://")
        ):
            return value
        raise ValueError("expected a Redis URL such as redis://127.0.0.1:6379/0")

    @model_validator(mode="after")
    def _consistent_ladder(self) -> Settings:
        names = [tier.name for tier in self.tiers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(duplicates)}")
        known = ", ".join(names)
        for index, rule in enumerate(self.routing.rules or []):
            if rule.tier not in names:
                raise ValueError(
                    f"routing.rules[{index}] ({rule.name!r}) names unknown tier {rule.tier!r}; "
                    f"known tiers: {known}"
                )
        default = self.routing.default_tier
        if default is not None and default not in names:
            raise ValueError(f"routing.default_tier names unknown tier {default!r}; known: {known}")
        shadow_tier = self.shadow.tier
        if shadow_tier not in ("next", "top", *names):
            raise ValueError(
                f'shadow.tier must be "next", "top" or a tier name, not {shadow_tier!r}; '
                f"known tiers: {known}"
            )
        first = self.routing.first_queries
        if first is not None and first.tier is not None and first.tier not in names:
            raise ValueError(
                f"routing.first_queries.tier names unknown tier {first.tier!r}; known: {known}"
            )
        for section in (self.routing.policy, self.routing.escalation):
            problems = section.problems(names)
            if problems:
                raise ValueError(f"routing {section.name!r}: " + "; ".join(problems))
        explicit = self.worker.model_dump(
            include={"task_soft_time_limit_s", "task_time_limit_s", "visibility_timeout_s"}
        )
        problems = check_time_limits(self.time_limits, self._derived_time_limits(), explicit)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- time limits and leases ---------------------------------------------------------------

    @property
    def endpoints(self) -> list[ModelEndpoint]:
        """Every model routeq calls: the tiers and their fallbacks, then the judge's model."""
        judge = [self.judge.model] if self.judge.model is not None else []
        return [*(e for tier in self.tiers for e in tier.endpoints), *judge]

    def _derived_time_limits(self) -> TimeLimits:
        worker = self.worker
        judge = [[self.judge.model]] if self.judge.model is not None else []
        return derive_time_limits(
            [*(tier.endpoints for tier in self.tiers), *judge],
            self.retry,
            worker.step_lease_s,
            worker.lease_margin_s,
            self.protection.max_inline_wait_s,
        )

    @property
    def time_limits(self) -> TimeLimits:
        """Celery's soft and hard time limits and the visibility timeout: the configured ones,
        or derived from the tiers (``routeq.timing``)."""
        derived = self._derived_time_limits()
        worker = self.worker
        soft = worker.task_soft_time_limit_s or derived.soft_s
        hard = worker.task_time_limit_s or max(derived.hard_s, soft + TIME_LIMIT_MARGIN_S)
        longest_countdown = max(derived.longest_lease_s, MAX_ERROR_COUNTDOWN_S)
        visibility = worker.visibility_timeout_s or max(
            derived.visibility_s, math.ceil(hard + longest_countdown + TIME_LIMIT_MARGIN_S)
        )
        return TimeLimits(soft, hard, visibility, derived.longest_lease_s, derived.claim_lease_s)

    @model_validator(mode="after")
    def _usable_api_keys(self) -> Settings:
        """A key that is set must be sendable: a trailing newline (``echo key > file``), a
        space or a control character fails every request later, inside httpx, with an error
        that quotes the whole key into the ledger. Fail at load instead, naming the variable,
        never the value. An unset key stays allowed: clients and the CLI need no keys, and the
        workers say so when they call. The variables' names are registered with
        ``routeq.secrets`` so that any text scrubbed in this process loses their values."""
        endpoints: list[tuple[str, ModelEndpoint]] = [(f"tier {t.name}", t) for t in self.tiers]
        endpoints += [
            (f"tier {t.name} fallback {i}", e)
            for t in self.tiers
            for i, e in enumerate(t.fallbacks, start=1)
        ]
        if self.judge.model is not None:
            endpoints.append(("judge.model", self.judge.model))
        register_secret_env(endpoint.api_key_env for _, endpoint in endpoints)
        users: dict[str, list[str]] = {}  # variable -> the endpoints that read it
        for label, endpoint in endpoints:
            if endpoint.api_key_env is not None:
                users.setdefault(endpoint.api_key_env, []).append(label)
        problems = [
            f"{problem} (used by {', '.join(labels)})"
            for variable, labels in users.items()
            if (problem := api_key_problem(variable, os.environ.get(variable, ""))) is not None
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- the ladder ---------------------------------------------------------------------------

    def tier(self, name: str) -> TierConfig:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise ConfigError(f"unknown tier {name!r}; known tiers: {', '.join(self.tier_names)}")

    @property
    def tier_names(self) -> list[str]:
        return [tier.name for tier in self.tiers]

    def next_tier(self, name: str) -> TierConfig | None:
        """The tier above ``name``, or None at the top."""
        index = self.tier_names.index(self.tier(name).name)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None

    @property
    def top_tier(self) -> TierConfig:
        return self.tiers[-1]

    @property
    def largest_context_window(self) -> int:
        return max(tier.context_window for tier in self.tiers)


def resolve_config_path(explicit: str | Path | None = None) -> Path | None:
    """The config file to read: an explicit path, ``$ROUTEQ_CONFIG``, or ``./routeq.toml``."""
    if explicit is not None:
        path = Path(explicit)
    elif os.environ.get(CONFIG_ENV_VAR):
        path = Path(os.environ[CONFIG_ENV_VAR])
    else:
        candidate = Path(DEFAULT_CONFIG_FILE)
        return candidate if candidate.is_file() else None
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found (set {CONFIG_ENV_VAR} to an existing file, or unset "
            "it to use the defaults)"
        )
    return path


def _describe(error: Any) -> str:
    """One validation error as 'field: problem (got ...)'."""
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{location}: {message}{shown}"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration, or raise ConfigError naming file, field and fix."""
    path = resolve_config_path(config_file)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    token = _file_data.set(data)
    try:
        return Settings(config_file=path, **overrides)
    except ValidationError as exc:
        where = str(path) if path is not None else "configuration (environment/defaults)"
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{where}: invalid configuration:\n  {problems}") from None
    finally:
        _file_data.reset(token)


def write_config(settings: Settings, path: Path) -> Path:
    """Write ``settings`` as a config file for other processes (workers started by the demo or
    tests). Connection URLs are left out: they may hold passwords, so they travel in the
    environment (``ROUTEQ_DATABASE_URL``, ``ROUTEQ_BROKER_URL``)."""
    from routeq import tomlwrite

    data = settings.model_dump(mode="python", exclude={"config_file", "database_url", "broker_url"})
    data["state_dir"] = str(settings.state_dir)
    header = "# Generated by routeq. Connection URLs come from the environment.\n"
    path.write_text(header + tomlwrite.dumps(data), encoding="utf-8")
    return path
