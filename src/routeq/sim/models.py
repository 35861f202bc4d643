"""Pure, deterministic logic of the simulated model provider.

Tests, the demo and the benchmarks need a stand-in for a real LLM provider
whose behaviour is *reproducible*: the same seed, model and prompt must give
the same answer on every run and on every machine.  All randomness here is
therefore derived from SHA-256 digests of the inputs, never from the global
``random`` state, and nothing in this module performs I/O except
:func:`load_sim_config`, which only reads the TOML file it is given.

Every generated answer starts with an honest marker ``[sim:MODEL q=0.87]``
so that a simulated answer can never be mistaken for a real one, and so that
simulated judges can "grade" it without any language understanding.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

__all__ = [
    "CODE_KEYWORDS",
    "ESCALATE_TOKEN",
    "Fault",
    "FinishReason",
    "OutcomeKind",
    "SimConfig",
    "SimModel",
    "SimOutcome",
    "complete",
    "default_sim_config",
    "estimate_prompt_tokens",
    "generate",
    "load_sim_config",
    "message_text",
    "truncate_outcome",
]

Fault = Literal["429", "500", "timeout", "malformed"]
FinishReason = Literal["stop", "length"]
OutcomeKind = Literal["fault", "good", "escalate", "refusal", "truncated", "vague", "judge"]

#: Words in the user prompt that make a good answer include a code block.
CODE_KEYWORDS: tuple[str, ...] = ("code", "function", "python", "script", "implement")
#: When a system message contains this token, a bad answer may be a bare escalation request.
ESCALATE_TOKEN = "[ESCALATE]"

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4
_PROB_FIELDS = ("fault_429", "fault_500", "fault_timeout", "fault_malformed")
_MARKER_RE = re.compile(r"\[sim:([^\s\]]+) q=(\d+(?:\.\d+)?)\]")

_FILLER_SENTENCES: tuple[str, ...] = (
    "The key consideration is to state the assumptions clearly.",
    "Each step follows directly from the previous one.",
    "This approach balances clarity and efficiency.",
    "Edge cases are handled explicitly rather than implicitly.",
    "The result can be verified independently with a small example.",
    "In practice this works well for typical inputs.",
    "Further detail can be provided if it is needed.",
    "The reasoning above is summarised for brevity.",
)
_CODE_BLOCK = (
    "```python\n"
    "def solve(values: list[int]) -> int:\n"
    '    """Simulated solution."""\n'
    "    return sum(values)\n"
    "```"
)
_REFUSAL = "I'm sorry, but I can't help with that."
_VAGUE = "It depends on several factors, so the answer may vary."


@dataclass(frozen=True)
class SimModel:
    """One simulated model: how good, how slow and how flaky it is.

    Probabilities are per request.  ``quality`` is the probability that an
    answer is good; the fault probabilities are rolled (cumulatively, in the
    order 429, 500, timeout, malformed) before any answer is produced, so
    their sum must not exceed 1.  A ``judge`` model ignores ``quality`` and
    scores the answer it is shown from that answer's ``[sim:...]`` marker.
    """

    name: str
    quality: float
    latency_ms: float = 20
    output_tokens: int = 60
    fault_429: float = 0.0
    fault_500: float = 0.0
    fault_timeout: float = 0.0
    fault_malformed: float = 0.0
    retry_after_s: float = 0.05
    judge: bool = False

    def __post_init__(self) -> None:
        """Reject impossible settings early, naming the offending field."""
        if not self.name:
            raise ValueError("field 'name': must be a non-empty string")
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"field 'quality': must be within [0, 1], got {self.quality!r}")
        if self.latency_ms < 0:
            raise ValueError(f"field 'latency_ms': must be >= 0, got {self.latency_ms!r}")
        if self.output_tokens < 1:
            raise ValueError(f"field 'output_tokens': must be >= 1, got {self.output_tokens!r}")
        if self.retry_after_s < 0:
            raise ValueError(f"field 'retry_after_s': must be >= 0, got {self.retry_after_s!r}")
        for name in _PROB_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"field {name!r}: must be within [0, 1], got {value!r}")
        total = sum(getattr(self, name) for name in _PROB_FIELDS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"field 'fault_malformed': fault probabilities sum to {total:.3f}, more than 1"
            )


@dataclass
class SimConfig:
    """The whole simulated provider: a seed plus the models it serves.

    ``models`` maps the model id used in requests to its :class:`SimModel`;
    the key must equal the model's ``name`` so the marker in an answer always
    names the model that was asked.  ``timeout_sleep_s`` is how long a
    ``timeout`` fault stalls before answering, long enough for any sane
    client timeout to fire first.
    """

    seed: int
    models: dict[str, SimModel]
    timeout_sleep_s: float = 5.0

    def __post_init__(self) -> None:
        """Catch key/name mismatches that would make markers lie."""
        for key, model in self.models.items():
            if key != model.name:
                raise ValueError(f"model {key!r}: key does not match model name {model.name!r}")
        if self.timeout_sleep_s < 0:
            raise ValueError(f"field 'timeout_sleep_s': must be >= 0, got {self.timeout_sleep_s!r}")


@dataclass(frozen=True)
class SimOutcome:
    """Result of one simulated request: either a fault or a completion.

    When ``fault`` is set the other completion fields are meaningless (the
    server turns the fault into an HTTP error or a broken body).  ``quality``
    is the sampled quality of the answer, the number shown in its marker;
    ``kind`` tells tests and benchmarks which branch produced the answer.
    """

    fault: Fault | None = None
    content: str = ""
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    quality: float = 0.0
    kind: OutcomeKind = "good"

    @property
    def ok(self) -> bool:
        """True when this outcome is a completion rather than a fault."""
        return self.fault is None


def default_sim_config(seed: int = 0) -> SimConfig:
    """Return the standard small/medium/large/judge line-up used by demos and tests."""
    models = [
        SimModel(name="sim-small", quality=0.55, latency_ms=15, output_tokens=60),
        SimModel(name="sim-medium", quality=0.8, latency_ms=30, output_tokens=90),
        SimModel(name="sim-large", quality=0.97, latency_ms=60, output_tokens=120),
        SimModel(name="sim-judge", quality=1.0, latency_ms=10, output_tokens=20, judge=True),
    ]
    return SimConfig(seed=seed, models={m.name: m for m in models})


# --------------------------------------------------------------------------- config loading

_FLOAT_FIELDS = frozenset({"quality", "latency_ms", "retry_after_s", *_PROB_FIELDS})
_INT_FIELDS = frozenset({"output_tokens"})
_BOOL_FIELDS = frozenset({"judge"})
_STR_FIELDS = frozenset({"name"})
_MODEL_FIELDS = frozenset(f.name for f in fields(SimModel))


def _is_number(value: object) -> bool:
    """TOML ints are acceptable where floats are expected, but bools are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_model_field(path: Path, model: str, key: str, value: object) -> object:
    """Validate one ``[models.NAME]`` entry so errors point at file, model and field."""
    where = f"{path}: model {model!r}: field {key!r}"
    if key not in _MODEL_FIELDS:
        raise ValueError(f"{where}: unknown field")
    if key in _FLOAT_FIELDS:
        if not _is_number(value):
            raise ValueError(f"{where}: expected a number, got {type(value).__name__}")
        return float(value)  # type: ignore[arg-type]
    if key in _INT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: expected an integer, got {type(value).__name__}")
        return value
    if key in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected a boolean, got {type(value).__name__}")
        return value
    if key in _STR_FIELDS:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {type(value).__name__}")
        if value != model:
            raise ValueError(f"{where}: must equal the table name {model!r}, got {value!r}")
        return value
    raise AssertionError(f"unhandled SimModel field {key!r}")  # pragma: no cover


def load_sim_config(path: str | Path) -> SimConfig:
    """Read a :class:`SimConfig` from TOML, failing loudly on anything unexpected.

    Format::

        seed = 7
        timeout_sleep_s = 2.0

        [models.sim-small]
        quality = 0.5
        latency_ms = 5

    A typo in a benchmark config should be an error, not a silently ignored
    key, so unknown keys and wrong types raise :class:`ValueError` naming the
    file, the model and the field.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{p}: invalid TOML: {exc}") from exc

    allowed_top = {"seed", "timeout_sleep_s", "models"}
    for key in data:
        if key not in allowed_top:
            raise ValueError(f"{p}: unknown top-level key {key!r}")

    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"{p}: field 'seed': expected an integer, got {type(seed).__name__}")
    timeout_sleep_s = data.get("timeout_sleep_s", 5.0)
    if not _is_number(timeout_sleep_s):
        raise ValueError(
            f"{p}: field 'timeout_sleep_s': expected a number, got {type(timeout_sleep_s).__name__}"
        )

    raw_models = data.get("models")
    if not isinstance(raw_models, dict) or not raw_models:
        raise ValueError(f"{p}: field 'models': expected at least one [models.NAME] table")

    models: dict[str, SimModel] = {}
    for name, table in raw_models.items():
        if not isinstance(table, dict):
            raise ValueError(f"{p}: model {name!r}: expected a table, got {type(table).__name__}")
        kwargs: dict[str, object] = {"name": name}
        for key, value in table.items():
            kwargs[key] = _check_model_field(p, name, key, value)
        if "quality" not in kwargs:
            raise ValueError(f"{p}: model {name!r}: field 'quality': missing")
        try:
            models[name] = SimModel(**kwargs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{p}: model {name!r}: {exc}") from exc

    try:
        return SimConfig(seed=seed, models=models, timeout_sleep_s=float(timeout_sleep_s))
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc


# --------------------------------------------------------------------------- helpers


def _unit(*parts: object) -> float:
    """Map the inputs to a float in [0, 1) via SHA-256, reproducibly across runs and hosts."""
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), default=str)
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def message_text(message: Mapping[str, object]) -> str:
    """Text of one OpenAI message; list-of-parts content is flattened to its text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
            elif isinstance(part, str):
                texts.append(part)
        return "".join(texts)
    return ""


def _prompt_key(messages: Sequence[Mapping[str, object]]) -> str:
    """Canonical text of the whole conversation, used as the hash input for a request."""
    return "\n".join(f"{m.get('role', '')}:{message_text(m)}" for m in messages)


def _last_text(messages: Sequence[Mapping[str, object]], role: str) -> str:
    for message in reversed(messages):
        if message.get("role") == role:
            return message_text(message)
    return ""


def estimate_prompt_tokens(messages: Sequence[Mapping[str, object]]) -> int:
    """Rough token count of a prompt: 4 chars per token plus per-message overhead."""
    chars = sum(len(message_text(m)) for m in messages)
    return chars // _CHARS_PER_TOKEN + _TOKENS_PER_MESSAGE * len(messages)


def _count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN)) if text else 0


def _marker(model: str, quality: float) -> str:
    return f"[sim:{model} q={quality:.2f}] "


def _wants_code(prompt: str) -> bool:
    lowered = prompt.lower()
    return any(word in lowered for word in CODE_KEYWORDS)


def _full_body(question_len: int, target_chars: int, with_code: bool, offset: int) -> str:
    """Body of a good answer, padded with filler sentences to about ``target_chars``."""
    parts = [f"Simulated answer to a {question_len}-character question."]
    if with_code:
        parts.append("\n\n" + _CODE_BLOCK + "\n\n")
    length = sum(len(p) for p in parts)
    i = 0
    # Guard against a degenerate loop; fillers are ~50 chars, so this is far beyond any target.
    while i < 10_000:
        sentence = _FILLER_SENTENCES[(offset + i) % len(_FILLER_SENTENCES)]
        sep = "" if parts[-1].endswith("\n") else " "
        if length + len(sep) + len(sentence) > target_chars:
            break
        parts.append(sep + sentence)
        length += len(sep) + len(sentence)
        i += 1
    return "".join(parts).rstrip()


# --------------------------------------------------------------------------- generation


def generate(
    config: SimConfig,
    model_name: str,
    messages: Sequence[Mapping[str, object]],
    attempt: int = 0,
) -> SimOutcome:
    """Decide what the simulated ``model_name`` answers to ``messages``.

    The fault roll includes ``attempt`` so a retried request can succeed,
    while the answer itself depends only on (seed, model, prompt): asking
    the same question again yields the same answer, which is what makes
    caching and benchmark comparisons meaningful.

    Raises :class:`KeyError` for a model not in ``config``.
    """
    model = config.models[model_name]
    prompt = _prompt_key(messages)
    seed = config.seed
    prompt_tokens = estimate_prompt_tokens(messages)

    fault = _roll_fault(model, _unit(seed, model.name, prompt, "fault", attempt))
    if fault is not None:
        return SimOutcome(fault=fault, prompt_tokens=prompt_tokens, kind="fault")
    return complete(config, model_name, messages)


def complete(
    config: SimConfig,
    model_name: str,
    messages: Sequence[Mapping[str, object]],
) -> SimOutcome:
    """The completion ``model_name`` gives to ``messages``, skipping the fault roll.

    Used directly by the server after a simulated timeout has stalled: the
    late answer is the normal one.  Raises :class:`KeyError` for an unknown model.
    """
    model = config.models[model_name]
    prompt_tokens = estimate_prompt_tokens(messages)
    if model.judge:
        return _judge(config, model, messages, prompt_tokens)
    return _answer(config, model, messages, _prompt_key(messages), prompt_tokens)


def _roll_fault(model: SimModel, r: float) -> Fault | None:
    threshold = 0.0
    table: tuple[tuple[Fault, float], ...] = (
        ("429", model.fault_429),
        ("500", model.fault_500),
        ("timeout", model.fault_timeout),
        ("malformed", model.fault_malformed),
    )
    for fault, probability in table:
        threshold += probability
        if r < threshold:
            return fault
    return None


def _answer(
    config: SimConfig,
    model: SimModel,
    messages: Sequence[Mapping[str, object]],
    prompt: str,
    prompt_tokens: int,
) -> SimOutcome:
    seed = config.seed
    u = _unit(seed, model.name, prompt, "good")
    frac = _unit(seed, model.name, prompt, "frac")
    good = u < model.quality
    quality = 0.7 + 0.3 * frac if good else 0.1 + 0.4 * frac
    marker = _marker(model.name, quality)

    question = _last_text(messages, "user")
    wants_code = _wants_code(question)
    target_chars = max(0, model.output_tokens * _CHARS_PER_TOKEN - len(marker))
    offset = int(_unit(seed, model.name, prompt, "filler") * len(_FILLER_SENTENCES))

    def done(content: str, kind: OutcomeKind, finish: FinishReason = "stop") -> SimOutcome:
        return SimOutcome(
            content=content,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=_count_tokens(content),
            quality=quality,
            kind=kind,
        )

    if good:
        return done(marker + _full_body(len(question), target_chars, wants_code, offset), "good")

    system = "\n".join(message_text(m) for m in messages if m.get("role") == "system")
    if ESCALATE_TOKEN in system and _unit(seed, model.name, prompt, "escalate") < 0.5:
        return done(marker + ESCALATE_TOKEN, "escalate")

    kind = int(_unit(seed, model.name, prompt, "bad-kind") * 3)
    if kind == 0:
        return done(marker + _REFUSAL, "refusal")
    if kind == 1:
        body = _full_body(len(question), target_chars, wants_code, offset)
        cut = max(1, int(len(body) * (0.3 + 0.3 * _unit(seed, model.name, prompt, "cut"))))
        return done(marker + body[:cut], "truncated", "length")
    return done(marker + _VAGUE, "vague")


def _judge(
    config: SimConfig,
    model: SimModel,
    messages: Sequence[Mapping[str, object]],
    prompt_tokens: int,
) -> SimOutcome:
    """Score the answer in the last user message from its honest ``[sim:...]`` marker."""
    text = _last_text(messages, "user")
    match = _MARKER_RE.search(text)
    if match is not None:
        seen = float(match.group(2))
        score = min(10, max(1, round(1 + 9 * seen)))
    else:
        seen = _unit(config.seed, model.name, text, "judge")
        score = 1 + int(9 * seen)
    content = json.dumps({"score": score, "reason": f"simulated judge: answer quality {seen:.2f}"})
    return SimOutcome(
        content=content,
        finish_reason="stop",
        prompt_tokens=prompt_tokens,
        completion_tokens=_count_tokens(content),
        quality=model.quality,
        kind="judge",
    )


def truncate_outcome(outcome: SimOutcome, max_tokens: int | None) -> SimOutcome:
    """Apply a request's ``max_tokens`` cap the way a real provider would.

    The cut keeps the ``[sim:...]`` marker intact even for tiny caps, so a
    truncated simulated answer is still honestly labelled.
    """
    if outcome.fault is not None or max_tokens is None:
        return outcome
    if outcome.completion_tokens <= max_tokens:
        return outcome
    limit = max_tokens * _CHARS_PER_TOKEN
    marker = _MARKER_RE.match(outcome.content)
    if marker is not None:
        limit = max(limit, marker.end() + 1)
    content = outcome.content[:limit]
    return SimOutcome(
        fault=None,
        content=content,
        finish_reason="length",
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=min(max_tokens, _count_tokens(content)),
        quality=outcome.quality,
        kind=outcome.kind,
    )
