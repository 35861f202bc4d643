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

Summarization requests (recognised by the instructions of :mod:`routeq.summary_spec`) are answered
with extractive summaries of the text given, so batch summarization can be exercised end to end:
a good answer keeps to the requested length and format and adds nothing, a bad one breaks a rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

__all__ = [
    "CODE_KEYWORDS",
    "ECHOED_SPECIAL_TOKEN",
    "ESCALATE_TOKEN",
    "Fault",
    "FinishReason",
    "OutcomeKind",
    "SimConfig",
    "SimModel",
    "SimOutcome",
    "complete",
    "context_overflow",
    "default_sim_config",
    "estimate_prompt_tokens",
    "generate",
    "load_sim_config",
    "message_text",
    "truncate_outcome",
]

Fault = Literal["429", "500", "timeout", "malformed"]
FinishReason = Literal["stop", "length"]
OutcomeKind = Literal[
    "fault",
    "good",
    "scripted",
    "escalate",
    "refusal",
    "truncated",
    "vague",
    "judge",
    "hallucination",
    "copy",
    "format",
    "short",
]

#: Words in the user prompt that make a good answer include a code block.
CODE_KEYWORDS: tuple[str, ...] = ("code", "function", "python", "script", "implement")
#: When a system message contains this token, a bad answer may be a bare escalation request.
ESCALATE_TOKEN = "[ESCALATE]"
#: What an ``echo_special`` model writes into its answers: a tokenizer special token's spelling,
#: as a model that leaks its end-of-text marker does, for tests that token counting survives it.
ECHOED_SPECIAL_TOKEN = "<|endoftext|>"

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

    ``context_window`` (off by default) makes the model refuse, like a real server, a request
    whose prompt tokens plus its ``max_tokens`` exceed it: HTTP 400 with OpenAI's
    ``context_length_exceeded`` error (see :func:`context_overflow`).

    Two knobs reproduce provider quirks that must not crash a worker, for fault tests:
    ``omit_usage`` answers without a ``usage`` object (as some OpenAI-compatible servers do),
    so the caller has to estimate tokens itself; ``echo_special`` ends every answer (for a
    judge: its reason) with :data:`ECHOED_SPECIAL_TOKEN`, text a strict tokenizer refuses
    (a ``max_tokens`` cut can remove it with the rest of the answer's tail).

    ``replies`` script answers, for a tier that must say something chosen (a few-shot
    classifier's label, say): ``(cue, reply)`` pairs, and a request whose last user message
    contains a cue (the first one listed that it contains) is answered with that reply after the
    usual marker, whatever the quality roll. Faults, ``max_tokens`` and the other knobs still
    apply. In TOML, a table: ``replies = { "zq-code" = "code" }``.
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
    omit_usage: bool = False
    echo_special: bool = False
    echo_auth: bool = False  # error bodies quote the request's credentials, as some APIs do
    context_window: int | None = None  # see context_overflow; None: any prompt is accepted
    replies: tuple[tuple[str, str], ...] = ()
    # The provider's own rate limit: more requests than this in the last second are refused
    # with 429 and ``Retry-After: retry_after_s``, as a real provider's limiter does. 0: none.
    rate_limit_rps: float = 0.0

    def __post_init__(self) -> None:
        """Reject impossible settings early, naming the offending field."""
        if not self.name:
            raise ValueError("field 'name': must be a non-empty string")
        for cue, reply in self.replies:
            if not isinstance(cue, str) or not cue or not isinstance(reply, str):
                raise ValueError(
                    f"field 'replies': expected non-empty cues with string replies, got "
                    f"{cue!r} -> {reply!r}"
                )
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"field 'quality': must be within [0, 1], got {self.quality!r}")
        if self.latency_ms < 0:
            raise ValueError(f"field 'latency_ms': must be >= 0, got {self.latency_ms!r}")
        if self.context_window is not None and self.context_window < 1:
            raise ValueError(f"field 'context_window': must be >= 1, got {self.context_window!r}")
        if self.output_tokens < 1:
            raise ValueError(f"field 'output_tokens': must be >= 1, got {self.output_tokens!r}")
        if self.retry_after_s < 0:
            raise ValueError(f"field 'retry_after_s': must be >= 0, got {self.retry_after_s!r}")
        if self.rate_limit_rps < 0:
            raise ValueError(f"field 'rate_limit_rps': must be >= 0, got {self.rate_limit_rps!r}")
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
    ``omit_usage`` (from the model's knob) tells the server to send no ``usage`` object.
    """

    fault: Fault | None = None
    content: str = ""
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    quality: float = 0.0
    kind: OutcomeKind = "good"
    omit_usage: bool = False

    @property
    def ok(self) -> bool:
        """True when this outcome is a completion rather than a fault."""
        return self.fault is None

    @property
    def usage(self) -> dict[str, int] | None:
        """The response's OpenAI ``usage`` object, or None when the model omits it."""
        if self.omit_usage:
            return None
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


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

_FLOAT_FIELDS = frozenset(
    {"quality", "latency_ms", "retry_after_s", "rate_limit_rps", *_PROB_FIELDS}
)
_INT_FIELDS = frozenset({"output_tokens", "context_window"})
_BOOL_FIELDS = frozenset({"judge", "omit_usage", "echo_special", "echo_auth"})
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
    if key == "replies":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"{where}: expected a table of cue = reply strings")
        return tuple(value.items())
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
    The model's ``omit_usage`` and ``echo_special`` knobs apply here, so a late answer
    has them too.
    """
    model = config.models[model_name]
    prompt_tokens = estimate_prompt_tokens(messages)
    if model.judge:
        outcome = _judge(config, model, messages, prompt_tokens)
    else:
        outcome = _answer(config, model, messages, _prompt_key(messages), prompt_tokens)
        if model.echo_special:
            content = f"{outcome.content} {ECHOED_SPECIAL_TOKEN}"
            outcome = replace(outcome, content=content, completion_tokens=_count_tokens(content))
    return replace(outcome, omit_usage=True) if model.omit_usage else outcome


def context_overflow(
    model: SimModel, messages: Sequence[Mapping[str, object]], max_tokens: int | None
) -> dict[str, object] | None:
    """The error body a model with a ``context_window`` answers (with HTTP 400) when the request
    does not fit it, else None.

    Checked the way vLLM and OpenAI check it: the prompt's tokens (the simulator's own count,
    :func:`estimate_prompt_tokens`, which like any real model's differs from routeq's) plus
    the ``max_tokens`` asked for (none asked: the prompt alone) must not exceed the window.
    The message is OpenAI's, so clients recognise it as real servers' answers are recognised.
    """
    if model.context_window is None:
        return None
    prompt_tokens = estimate_prompt_tokens(messages)
    completion = max_tokens or 0
    requested = prompt_tokens + completion
    if requested <= model.context_window:
        return None
    message = (
        f"This model's maximum context length is {model.context_window} tokens. However, you "
        f"requested {requested} tokens ({prompt_tokens} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion. (simulated)"
    )
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


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

    scripted = next((reply for cue, reply in model.replies if cue in question), None)
    if scripted is not None:
        return done(marker + scripted, "scripted")

    system = "\n".join(message_text(m) for m in messages if m.get("role") == "system")
    request = _summary_request(system)
    if request is not None:
        content, summary_kind, finish = _summary_answer(
            request, system, question, good, seed, model.name, prompt
        )
        return done(marker + content, summary_kind, finish)

    if good:
        return done(marker + _full_body(len(question), target_chars, wants_code, offset), "good")

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


# --------------------------------------------------------------------------- summaries
#
# Summarization requests (see routeq.summary_spec) get answers built from the source text, so a
# batch run can be checked end to end: a good answer is an extractive summary that keeps to the
# requested format and length, copies no long run of the source and adds no number or name the
# source lacks; each bad kind breaks exactly one of those rules (or fails the way any answer can).

_SUMMARY_TASK_RE = re.compile(r"Summarize|Combine them into one summary")
_SUMMARY_LENGTH_RE = re.compile(r"\bin (\d+)-(\d+) words\b")
_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_PART_LABEL_RE = re.compile(r"Part \d+ summary:")
#: How a line that is not plain prose starts: a bullet, a numbered item or a heading.
_LIST_START_RE = re.compile(r"(?:[-*+\u2022#]|\d+[.)](?:\s|$))")
_LINE_MARKER_RE = re.compile(r"(?:[-*+\u2022]|\d+[.)]|#+)\s+")
_SENTENCE_STOP_RE = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
#: Words whose trailing full stop rarely ends a sentence.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "inc", "ltd", "co"}
)
#: Characters stripped from the end of an excerpt: spaces, clause punctuation and dashes.
_TRAILING = " ,;:-\u2013\u2014"
_SENTENCE_END_RE = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")

#: Longest excerpt, in words, taken from one source sentence: far below the copy check's run of 30.
_EXCERPT_WORDS = 18
#: A summary sharing this many consecutive words with its source is a copy, not a summary.
_COPY_RUN = 30
#: Sentence-initial connectives between excerpts (paragraphs), and their mid-line forms (bullets).
_CONNECTIVES: tuple[str, ...] = (
    "In addition,",
    "It also notes that",
    "Further,",
    "The text also states that",
    "Beyond that,",
    "Separately,",
)
_PADDING: tuple[str, ...] = (
    "These are the main points stated in the text.",
    "No other facts are given in the text.",
    "Nothing further is stated.",
    "That is all.",
    "Indeed.",
)
#: Common English words that are never names: safe to lower-case, weak places to end an excerpt.
_FUNCTION_WORDS = frozenset(
    """a about after against all also an and any are as at be because been before both but by
    during each for from had has have he her his however if in into is it its many more most no
    nor not of on one or our over she since so some such than that the their them there these
    they this those through to under until was we were when where which while who whose will
    with within without would""".split()  # noqa: SIM905
)
_HALLUCINATED: tuple[str, ...] = (
    "Revenue rose {n}% at {name} Labs last year.",
    "The board approved {n} new roles at {name} Labs.",
    "Output fell {n}% after {name} Group withdrew its support.",
    "A further {n} customers signed with {name} Labs.",
    "Sales at {name} reached {n}.",
)
_HALLUCINATED_NAMES: tuple[str, ...] = ("Quorvex", "Zentharo", "Brixmoor", "Valdane", "Ostrakai")
_HALLUCINATED_NUMBERS: tuple[int, ...] = (37, 412, 58, 73, 1294)

_SummaryFormat = Literal["paragraph", "bullets"]


@dataclass(frozen=True)
class _SummaryRequest:
    """What a summarization system prompt asks for: length bounds in words and a format."""

    min_words: int
    max_words: int
    format: _SummaryFormat


@dataclass(frozen=True)
class _Piece:
    """A run of at most ``_EXCERPT_WORDS`` consecutive source words, in source order ``pos``."""

    pos: int
    tokens: tuple[str, ...]
    words: int
    score: int


@dataclass(frozen=True)
class _Source:
    """The text to summarise, pre-digested for building extractive summaries."""

    text: str
    words: int
    pieces: tuple[_Piece, ...]
    lower_words: frozenset[str]


def _summary_request(system: str) -> _SummaryRequest | None:
    """Parse the summary instructions in a system message, or ``None`` for another request."""
    if _SUMMARY_TASK_RE.search(system) is None:
        return None
    bounds = _SUMMARY_LENGTH_RE.findall(system)
    if not bounds:
        return None
    low, high = (int(v) for v in bounds[-1])
    fmt: _SummaryFormat = "bullets" if "bulleted list" in system else "paragraph"
    return _SummaryRequest(min_words=min(low, high), max_words=max(low, high), format=fmt)


def _count_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _source_sentences(text: str) -> list[str]:
    """Sentences of ``text``, without list markers, heading hashes or ``Part N summary:`` labels,
    and without this simulator's own ``[sim:...]`` markers: a combine prompt quotes the partial
    summaries the simulator wrote, markers included, and routeq passes them on as they are."""
    text = _MARKER_RE.sub("", text)
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(" ".join(current))
            current.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line or _PART_LABEL_RE.fullmatch(line):
            flush()
            continue
        marker = _LINE_MARKER_RE.match(line)
        if marker is not None:
            flush()
            current.append(line[marker.end() :])
            if marker.group().startswith("#"):
                flush()
            continue
        current.append(line)
    flush()

    sentences: list[str] = []
    for block in blocks:
        for sentence in _split_block(block):
            marker = _LINE_MARKER_RE.match(sentence)
            cleaned = sentence[marker.end() :] if marker is not None else sentence
            if cleaned.strip():
                sentences.append(cleaned.strip())
    return sentences


def _split_block(block: str) -> list[str]:
    """Split a paragraph into sentences, not after abbreviations such as "Dr." or "U.S."."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_STOP_RE.finditer(block):
        before = block[start : match.start()].split()
        last = before[-1].lower() if before else ""
        if match.group().startswith(".") and (
            last in _ABBREVIATIONS or "." in last or (len(last) == 1 and last.isalpha())
        ):
            continue
        sentences.append(block[start : match.end()])
        start = match.end()
    sentences.append(block[start:])
    return [s.strip() for s in sentences if s.strip()]


def _weak_end(tokens: Sequence[str], cut: int) -> bool:
    """True when cutting before ``tokens[cut]`` leaves a dangling word or splits a name."""
    last = tokens[cut - 1].strip("\"'()[]\u201c\u201d")
    if last.lower() in _FUNCTION_WORDS:
        return True
    following = tokens[cut] if cut < len(tokens) else ""
    return last[:1].isupper() and following[:1].isupper() and last[-1:].isalnum()


def _split_sentence(sentence: str, cap: int) -> list[list[str]]:
    """Cut a sentence into runs of at most ``cap`` words at the most natural place.

    A cut after a comma is preferred; otherwise one that does not end on a function word or
    split a run of capitalised words (a name).
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    count = 0
    for token in sentence.split():
        n = _count_words(token)
        if current and count + n > cap:
            words = [_count_words(t) for t in current]
            candidates = [c for c in range(len(current), 0, -1) if sum(words[:c]) >= cap // 2]
            pending = [*current, token]
            cut = next((c for c in candidates if current[c - 1][-1] in ",;:"), None)
            if cut is None:
                cut = next((c for c in candidates if not _weak_end(pending, c)), len(current))
            chunks.append(current[:cut])
            current = current[cut:]
            count = sum(_count_words(t) for t in current)
        current.append(token)
        count += n
    if current:
        chunks.append(current)
    return chunks


def _digest_source(text: str) -> _Source:
    pieces: list[_Piece] = []
    for sentence in _source_sentences(text):
        for index, tokens in enumerate(_split_sentence(sentence, _EXCERPT_WORDS)):
            words = sum(_count_words(t) for t in tokens)
            if words == 0:
                continue
            body = " ".join(tokens)
            score = 3 if index == 0 else 0
            if words <= 8 and not _SENTENCE_END_RE.search(body):
                score -= 3  # a heading or a caption: rarely worth a place in a summary
            if any(ch.isdigit() for ch in body):
                score += 2
            if any(w[0].isupper() for t in tokens[1:] for w in _WORD_RE.findall(t)):
                score += 1
            pieces.append(_Piece(pos=len(pieces), tokens=tuple(tokens), words=words, score=score))
    return _Source(
        text=text,
        words=_count_words(text),
        pieces=tuple(pieces),
        lower_words=frozenset(w for w in _WORD_RE.findall(text) if w.islower()),
    )


def _lowered(token: str, source: _Source) -> str | None:
    """``token`` with its capital dropped, if it starts with a common word rather than a name.

    A word counts as common when it is a function word or the source itself uses it in lower
    case, so proper names always keep their capital.
    """
    match = _WORD_RE.match(token)
    if match is None or match.start() != 0:
        return None
    word = match.group()
    if not (word[0].isupper() and word[1:].islower()):
        return None
    if word.lower() not in _FUNCTION_WORDS and word.lower() not in source.lower_words:
        return None
    return token[0].lower() + token[1:]


def _excerpt(piece: _Piece, source: _Source, *, lower_first: bool, terminal: bool) -> str:
    """A piece as summary text: trailing commas dropped, ending in a full stop when ``terminal``.

    With ``lower_first`` a capitalised common first word is lower-cased (see :func:`_lowered`).
    """
    tokens = list(piece.tokens)
    if lower_first:
        tokens[0] = _lowered(tokens[0], source) or tokens[0]
    text = " ".join(tokens).rstrip(_TRAILING)
    if terminal:
        return text if _SENTENCE_END_RE.search(text) else text + "."
    return text.rstrip(".!?")


def _render(
    pieces: Sequence[_Piece], source: _Source, fmt: _SummaryFormat, offset: int, joined: bool
) -> str:
    """Lay out the excerpts as a paragraph or as bullets, with connectives between them.

    Excerpts that are adjacent in the source are always separated by a connective, so no run of
    consecutive source words in the summary is longer than one excerpt; ``joined`` forces a
    connective between every pair (the fallback if the source repeats itself).
    """
    connectives = [_CONNECTIVES[(offset + i) % len(_CONNECTIVES)] for i in range(len(pieces))]
    if fmt == "paragraph":
        sentences: list[str] = []
        for i, piece in enumerate(pieces):
            adjacent = i > 0 and piece.pos == pieces[i - 1].pos + 1
            optional = (offset + i) % 3 != 0 and _lowered(piece.tokens[0], source) is not None
            if i > 0 and (adjacent or joined or optional):
                text = _excerpt(piece, source, lower_first=True, terminal=True)
                sentences.append(f"{connectives[i]} {text}")
            else:
                text = _excerpt(piece, source, lower_first=False, terminal=True)
                if i == 0 and _LIST_START_RE.match(text):
                    # "2024. Sales rose" would read as a numbered list item, "#1 ..." as a heading.
                    text = f"The text notes that {text}"
                sentences.append(text)
        return " ".join(sentences)
    groups: list[list[int]] = []
    for i, piece in enumerate(pieces):
        adjacent = i > 0 and piece.pos == pieces[i - 1].pos + 1
        if groups and (adjacent or joined):
            groups[-1].append(i)
        else:
            groups.append([i])
    lines: list[str] = []
    for group in groups:
        parts: list[str] = []
        for k, i in enumerate(group):
            last = k == len(group) - 1
            text = _excerpt(pieces[i], source, lower_first=k > 0, terminal=last)
            connective = connectives[i][0].lower() + connectives[i][1:]
            parts.append(text if k == 0 else f"{connective} {text}")
        lines.append("- " + "; ".join(parts))
    return "\n".join(lines)


def _shares_run(summary: str, source: _Source, run: int = _COPY_RUN) -> bool:
    """True when ``summary`` repeats ``run`` or more consecutive source words (ignoring case)."""
    ours = [w.lower() for w in _WORD_RE.findall(summary)]
    if len(ours) < run:
        return False
    theirs = [w.lower() for w in _WORD_RE.findall(source.text)]
    grams = {tuple(theirs[i : i + run]) for i in range(len(theirs) - run + 1)}
    return any(tuple(ours[i : i + run]) in grams for i in range(len(ours) - run + 1))


def _length_bounds(request: _SummaryRequest, source: _Source) -> tuple[int, int, int]:
    """(lowest, highest, aimed-for) word count of an acceptable summary of ``source``."""
    low = min(request.min_words, max(1, source.words // 2))
    high = request.max_words
    if source.words > request.max_words:
        # Strictly shorter than 80% of the source, in integers to stay clear of rounding.
        high = min(high, (4 * source.words - 1) // 5)
    high = max(high, low)
    target = (low + high) // 2
    if source.words <= request.max_words:
        target = min(target, max(low, 3 * source.words // 5))
    return low, high, target


def _trim(piece: _Piece, keep: int) -> _Piece | None:
    """The longest leading part of ``piece`` with at most ``keep`` words (``None`` if empty)."""
    tokens: list[str] = []
    words = 0
    for token in piece.tokens:
        n = _count_words(token)
        if words + n > keep:
            break
        tokens.append(token)
        words += n
    # Prefer not to end on a dangling "in" or "the", or halfway through a name.
    full = list(piece.tokens)
    cut = len(tokens)
    while cut > 1 and _weak_end(full, cut):
        cut -= 1
    if cut > 1:
        tokens = tokens[:cut]
        words = sum(_count_words(t) for t in tokens)
    if words == 0:
        return None
    return _Piece(piece.pos, tuple(tokens), words, piece.score)


def _good_summary(
    source: _Source,
    fmt: _SummaryFormat,
    low: int,
    high: int,
    target: int,
    offset: int,
) -> str:
    """An extractive summary of ``source`` in ``fmt`` of ``low``..``high`` words, near ``target``.

    Pieces holding numbers and names are preferred, the first words of a sentence over its
    continuation; the chosen ones keep their source order.  Pieces are added until ``target``
    is reached, then (if still short of ``low``) cut to fit the remaining room, and only then
    padded with generic sentences.
    """
    body = _select(source, fmt, low, high, target, offset, joined=False)
    if _shares_run(body, source):
        # The source repeats itself, so separate excerpts can still line up into a long run of
        # its words: put a connective between every pair of excerpts instead.
        body = _select(source, fmt, low, high, target, offset, joined=True)
    count = _count_words(body)
    padding = 0
    while count < low and padding < 100:
        fitting = [p for p in _PADDING if _count_words(p) <= high - count]
        if not fitting:
            break
        sentence = fitting[0] if count + _count_words(fitting[0]) <= target else fitting[-1]
        body = _append_sentence(body, sentence, fmt)
        count = _count_words(body)
        padding += 1
    return body


def _select(
    source: _Source,
    fmt: _SummaryFormat,
    low: int,
    high: int,
    target: int,
    offset: int,
    joined: bool,
) -> str:
    """Choose and render the excerpts of :func:`_good_summary` (without padding)."""
    chosen: list[_Piece] = []
    body = ""
    count = 0

    def attempt(candidate: _Piece, shortest: int) -> bool:
        """Add ``candidate``, cut down to fit under ``high`` if need be; False if it cannot."""
        nonlocal body, count
        piece: _Piece | None = candidate
        while piece is not None and (piece is candidate or piece.words >= shortest):
            ordered = sorted([*chosen, piece], key=lambda p: p.pos)
            text = _render(ordered, source, fmt, offset, joined)
            n = _count_words(text)
            if n <= high:
                chosen.append(piece)
                body, count = text, n
                return True
            piece = _trim(piece, min(piece.words - 1, piece.words - (n - high)))
        return False

    ranked = sorted(source.pieces, key=lambda p: (-p.score, p.pos))
    seen: set[tuple[str, ...]] = set()
    for candidate in ranked:
        if candidate.tokens in seen:
            continue  # a repeated passage is worth one mention, unless needed to reach ``low``
        seen.add(candidate.tokens)
        if attempt(candidate, 3) and count >= target:
            break
    if count < low:
        used = {p.pos for p in chosen}
        for candidate in ranked:
            if candidate.pos not in used and attempt(candidate, 1) and count >= low:
                break
    return body


def _append_sentence(body: str, sentence: str, fmt: _SummaryFormat) -> str:
    """``body`` with one more sentence: a new bullet, or the paragraph's next sentence."""
    if fmt == "bullets":
        return f"{body}\n- {sentence}" if body else f"- {sentence}"
    return f"{body} {sentence}" if body else sentence


def _hallucination(source: _Source, offset: int, room: int) -> str | None:
    """A sentence of at most ``room`` words with a number and a mid-sentence name, both absent
    from ``source``; ``None`` when no such sentence is short enough.
    """
    fitting = [t for t in _HALLUCINATED if _count_words(t.format(n=1, name="X")) <= room]
    if not fitting:
        return None
    known_words = {w.lower() for w in _WORD_RE.findall(source.text)}
    known_numbers = set(_NUMBER_RE.findall(source.text))
    names = [n for n in _HALLUCINATED_NAMES if n.lower() not in known_words]
    name = names[offset % len(names)] if names else _HALLUCINATED_NAMES[0]
    while name.lower() in known_words:
        name += "ix"
    numbers = [n for n in _HALLUCINATED_NUMBERS if str(n) not in known_numbers]
    number = numbers[offset % len(numbers)] if numbers else 9001
    while any(str(number) in known for known in known_numbers):
        number += 1
    return fitting[offset % len(fitting)].format(n=number, name=name)


def _copy(text: str, max_words: int) -> str:
    """The first ``max_words`` words of ``text`` verbatim (all of it when shorter)."""
    matches = list(_WORD_RE.finditer(text))
    if len(matches) <= max_words:
        return text.strip()
    return text[: matches[max_words - 1].end()].strip()


def _summary_answer(
    request: _SummaryRequest,
    system: str,
    text: str,
    good: bool,
    seed: int,
    model: str,
    prompt: str,
) -> tuple[str, OutcomeKind, FinishReason]:
    """Content (after the marker), kind and finish reason of a summarization answer."""

    def unit(tag: str) -> float:
        return _unit(seed, model, prompt, tag)

    source = _digest_source(text)
    low, high, target = _length_bounds(request, source)
    offset = int(unit("summary-connective") * len(_CONNECTIVES))
    fmt = request.format

    def summary(fmt: _SummaryFormat = fmt, high: int = high, target: int = target) -> str:
        return _good_summary(source, fmt, low, high, min(target, high), offset)

    if good:
        return summary(), "good", "stop"

    if ESCALATE_TOKEN in system and unit("escalate") < 0.5:
        return ESCALATE_TOKEN, "escalate", "stop"

    # The invented sentence must fit beside a summary of at least ``low`` words, so that the
    # answer breaks only the "no new numbers or names" rule.
    extra = _hallucination(source, int(unit("summary-hallucination") * 1000), high - low)
    kinds: list[OutcomeKind] = ["format", "refusal", "truncated"]
    if extra is not None:
        kinds.append("hallucination")
    if min(request.max_words, source.words) >= _COPY_RUN:
        kinds.append("copy")
    if low > 5:
        kinds.append("short")
    kind = kinds[int(unit("summary-bad-kind") * len(kinds))]

    if kind == "hallucination" and extra is not None:
        body = summary(high=high - _count_words(extra))
        return _append_sentence(body, extra, fmt), kind, "stop"
    if kind == "format":
        return summary(fmt="paragraph" if fmt == "bullets" else "bullets"), kind, "stop"
    if kind == "copy":
        return _copy(text, request.max_words), kind, "stop"
    if kind == "short":
        n = min(3 + int(unit("summary-short") * 3), low - 1)
        tokens: list[str] = []
        ranked = sorted(source.pieces, key=lambda p: (-p.score, p.pos))
        start = ranked[0].pos if ranked else 0
        for token in (t for p in source.pieces[start:] for t in p.tokens):
            if not tokens and _LIST_START_RE.match(token + " "):
                continue
            if sum(_count_words(t) for t in [*tokens, token]) > n:
                break
            tokens.append(token)
        body = " ".join(tokens).rstrip(_TRAILING + ".!?") + "."
        return ("- " + body if fmt == "bullets" else body), kind, "stop"
    if kind == "refusal":
        return _REFUSAL, kind, "stop"
    body = summary()
    cut = max(1, int(len(body) * (0.3 + 0.3 * unit("cut"))))
    return body[:cut], "truncated", "length"


def _judge(
    config: SimConfig,
    model: SimModel,
    messages: Sequence[Mapping[str, object]],
    prompt_tokens: int,
) -> SimOutcome:
    """Score the answer in the last user message from its honest ``[sim:...]`` marker; asked
    to compare two answers (``Answer A:`` and ``Answer B:``), prefer the one whose marker
    scores higher, as the pointwise judge would."""
    text = _last_text(messages, "user")
    if "\nAnswer A:\n" in text and "\nAnswer B:\n" in text:
        return _pairwise(model, text, prompt_tokens)
    match = _MARKER_RE.search(text)
    if match is not None:
        seen = float(match.group(2))
        score = min(10, max(1, round(1 + 9 * seen)))
    else:
        seen = _unit(config.seed, model.name, text, "judge")
        score = 1 + int(9 * seen)
    reason = f"simulated judge: answer quality {seen:.2f}"
    if model.echo_special:  # inside the reason, so the verdict stays valid JSON
        reason = f"{reason} {ECHOED_SPECIAL_TOKEN}"
    content = json.dumps({"score": score, "reason": reason})
    return SimOutcome(
        content=content,
        finish_reason="stop",
        prompt_tokens=prompt_tokens,
        completion_tokens=_count_tokens(content),
        quality=model.quality,
        kind="judge",
    )


def _pairwise(model: SimModel, text: str, prompt_tokens: int) -> SimOutcome:
    first, _, second = text.partition("\nAnswer B:\n")
    scores = []
    for part in (first.partition("\nAnswer A:\n")[2], second):
        match = _MARKER_RE.search(part)
        scores.append(0 if match is None else round(1 + 9 * float(match.group(2))))
    better = "tie" if scores[0] == scores[1] else "A" if scores[0] > scores[1] else "B"
    content = json.dumps({"better": better, "reason": f"simulated judge: scores {scores}"})
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
    return replace(
        outcome,
        content=content,
        finish_reason="length",
        completion_tokens=min(max_tokens, _count_tokens(content)),
    )
