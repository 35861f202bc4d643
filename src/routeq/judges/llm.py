"""The LLM-as-judge prompt and the parsing of its reply. Pure; the call itself is the worker's.

The parser reads the shapes judges really answer in, small models included: the JSON asked
for, bare or in a code fence or in prose; JSON cut off by ``max_tokens`` after its score
(``{"score": 1, "reason": "The answer ign``); Python-style ``{'score': 7}``; ``Score: 7/10``,
``**Score:** 7``, ``Rating: 4 out of 5``; a bare ``7/10``; a reply that is only a number. A reply
with no score, with a score that may itself have been cut (``{"score": 1`` could have been
``10``), or with disagreeing scores raises :class:`JudgeReplyError`: the tier's fail mode then
decides, visibly, instead of a guessed score deciding silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

MAX_SCORE = 10
MIN_SCORE = 1


class JudgeError(ValueError):
    """The LLM judge could not give a verdict (its prompt cannot be built, or its reply is
    unusable). The worker treats it like a failed judge call: the tier's fail mode decides."""


class JudgeReplyError(JudgeError):
    """The judge model's reply carries no usable score."""


@dataclass(frozen=True)
class JudgeScore:
    score: int
    reason: str


def judge_messages(
    rubric: str, question: str, answer: str, *, note: str | None = None
) -> list[dict[str, str]]:
    """Chat messages asking the judge model to score ``answer``; ``note`` (say, that part of
    the text was left out) is put just before the request for a verdict."""
    notice = f"{note}\n\n" if note else ""
    return [
        {"role": "system", "content": "You grade answers strictly and fairly. " + rubric},
        {
            "role": "user",
            "content": (
                f"Question:\n{question}\n\nAnswer to grade:\n{answer}\n\n"
                f"{notice}Your verdict (JSON):"
            ),
        },
    ]


_DECODER = json.JSONDecoder()
_NUMBER: Final = r"-?\d+(?:\.\d+)?"
_LABELLED: Final = re.compile(
    r"(?<![a-z_])(?P<quote>[\"']?)(?:score|rating|grade)(?![a-z_])[\"'*_\s]*[:=][\"'*_\s]*"
    rf"(?P<num>{_NUMBER})(?:\s*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
"""``score: 7``, ``"score": 7``, ``'score': '7'``, ``**Score:** 7/10``, ``Rating = 4 out of 5``."""
_FRACTION: Final = re.compile(
    r"(?<![\w./])(?P<num>\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(?P<den>10)(?![\w/]|\.\d)",
    re.IGNORECASE,
)
"""A bare ``7/10`` or ``7 out of 10`` (not a date such as 3/10/2024)."""
_BARE_NUMBER: Final = re.compile(rf"\s*\**(?P<num>{_NUMBER})\**\s*\.?\s*")
_REASON: Final = re.compile(
    r"[\"']reason[\"']\s*:\s*(?P<q>[\"'])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P<end>(?P=q))?",
    re.IGNORECASE | re.DOTALL,
)
_TEXT_REASON_CHARS: Final = 300


def parse_judge_reply(reply: str, *, truncated: bool = False) -> JudgeScore:
    """The score and reason in a judge model's ``reply``.

    Tried in order, the first kind found deciding: complete JSON objects with a ``score`` key;
    a labelled score (``score: 7``, ``"score": 7`` in cut-off JSON, ``Score: 7/10``); a bare
    ``7/10``; a reply that is only a number. Scores out of another scale (``4/5``, ``85/100``)
    are scaled to 1-10. Pass ``truncated=True`` when the reply was cut by ``max_tokens``
    (``finish_reason == "length"``): a score at the very end of a cut reply is refused, as it
    may have lost digits.

    Raises :class:`JudgeReplyError` when there is no score, when a score may have been cut,
    when scores of the same kind disagree, or when the score is not a number in 1-10.
    """
    found = (
        _from_json(reply)
        or _from_labels(reply, truncated)
        or _from_fractions(reply, truncated)
        or _from_bare_number(reply, truncated)
    )
    if not found:
        raise JudgeReplyError(f"judge reply has no score: {reply[:120]!r}")
    scores = {score for score, _ in found}
    if len(scores) > 1:
        listed = ", ".join(str(score) for score in sorted(scores))
        raise JudgeReplyError(f"judge reply has disagreeing scores ({listed}): {reply[:120]!r}")
    return found[0][1]


def _from_json(reply: str) -> list[tuple[int, JudgeScore]]:
    """Scores of the complete JSON objects in ``reply`` that have a ``score`` key (any case).

    An object that decodes is skipped whole, so a nested object's keys are not read twice; an
    object without a score is searched inside (``{"verdict": {"score": 7}}``)."""
    found: list[tuple[int, JudgeScore]] = []
    position = reply.find("{")
    while position != -1:
        try:
            data, end = _DECODER.raw_decode(reply, position)
        except json.JSONDecodeError:
            data, end = None, position + 1
        key = _score_key(data)
        if key is None:
            end = position + 1
        else:
            assert isinstance(data, dict)
            scored = _checked(data[key], _json_reason(data))
            found.append((scored.score, scored))
        position = reply.find("{", end)
    return found


def _score_key(data: object) -> str | None:
    if isinstance(data, dict):
        return next((key for key in data if isinstance(key, str) and key.lower() == "score"), None)
    return None


def _json_reason(data: dict[object, object]) -> str:
    reason = next(
        (v for k, v in data.items() if isinstance(k, str) and k.lower() == "reason"), None
    )
    return "" if reason is None else str(reason).strip()


def _from_labels(reply: str, truncated: bool) -> list[tuple[int, JudgeScore]]:
    """Labelled scores: prose (``Score: 7/10``) and JSON-like text that did not decode (cut off
    by ``max_tokens``, or Python-style quotes)."""
    found: list[tuple[int, JudgeScore]] = []
    for match in _LABELLED.finditer(reply):
        jsonish = bool(match.group("quote"))
        if _at_end(reply, match.end()) and (truncated or jsonish):
            raise JudgeReplyError(
                f"judge reply was cut off at its score {match.group(0).strip()!r}: "
                "the number may have lost digits"
            )
        raw = match.group("num"), match.group("den")
        reason = _cut_json_reason(reply) if jsonish else reply.strip()[:_TEXT_REASON_CHARS]
        scored = _checked_fraction(*raw, reason)
        found.append((scored.score, scored))
    return found


def _from_fractions(reply: str, truncated: bool) -> list[tuple[int, JudgeScore]]:
    found: list[tuple[int, JudgeScore]] = []
    for match in _FRACTION.finditer(reply):
        if truncated and _at_end(reply, match.end()):
            raise JudgeReplyError("judge reply was cut off at its score: it may have lost digits")
        scored = _checked_fraction(
            match.group("num"), match.group("den"), reply.strip()[:_TEXT_REASON_CHARS]
        )
        found.append((scored.score, scored))
    return found


def _from_bare_number(reply: str, truncated: bool) -> list[tuple[int, JudgeScore]]:
    """A reply that is a number and nothing else (``8``, ``**8**``, ``8.``)."""
    match = _BARE_NUMBER.fullmatch(reply)
    if match is None:
        return []
    if truncated:
        raise JudgeReplyError("judge reply was cut off at its score: it may have lost digits")
    scored = _checked(match.group("num"), "")
    return [(scored.score, scored)]


def _at_end(reply: str, end: int) -> bool:
    """Whether nothing but blanks follows position ``end``: a number there may be cut short."""
    return not reply[end:].strip()


def _cut_json_reason(reply: str) -> str:
    """The ``reason`` string of JSON-like text, marked when the reply ended inside it."""
    match = _REASON.search(reply)
    if match is None:
        return ""
    text = match.group("text").replace('\\"', '"').strip()
    if match.group("end") is None:
        return f"{text}... (judge reply cut off)" if text else "(judge reply cut off)"
    return text


def _checked_fraction(numerator: str, denominator: str | None, reason: str) -> JudgeScore:
    """``numerator`` out of ``denominator`` (10 when absent), scaled to 1-10 and checked."""
    if denominator is None:
        return _checked(numerator, reason)
    scale = float(denominator)
    if scale <= 0:
        raise JudgeReplyError(f"judge score {numerator}/{denominator} has no scale")
    return _checked(float(numerator) * MAX_SCORE / scale, reason)


def _checked(raw: object, reason: str) -> JudgeScore:
    if isinstance(raw, str):
        fraction = re.fullmatch(
            rf"\s*({_NUMBER})\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)\s*", raw, re.IGNORECASE
        )
        if fraction is not None:
            return _checked_fraction(fraction.group(1), fraction.group(2), reason)
    if isinstance(raw, bool):
        raise JudgeReplyError(f"judge score is not a number: {raw!r}")
    try:
        score = round(float(str(raw)))
    except (ValueError, OverflowError):
        raise JudgeReplyError(f"judge score is not a number: {raw!r}") from None
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise JudgeReplyError(f"judge score {score} is outside {MIN_SCORE}-{MAX_SCORE}")
    return JudgeScore(score=score, reason=reason or "(no reason given)")
