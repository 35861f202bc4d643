"""The LLM-as-judge prompt and the parsing of its reply. Pure; the call itself is the worker's."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_SCORE = 10
MIN_SCORE = 1


class JudgeReplyError(ValueError):
    """The judge model's reply carries no usable score."""


@dataclass(frozen=True)
class JudgeScore:
    score: int
    reason: str


def judge_messages(rubric: str, question: str, answer: str) -> list[dict[str, str]]:
    """Chat messages asking the judge model to score ``answer``."""
    return [
        {"role": "system", "content": "You grade answers strictly and fairly. " + rubric},
        {
            "role": "user",
            "content": (
                f"Question:\n{question}\n\nAnswer to grade:\n{answer}\n\nYour verdict (JSON):"
            ),
        },
    ]


_DECODER = json.JSONDecoder()
_SCORE_LINE = re.compile(r"score\s*[:=]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_judge_reply(reply: str) -> JudgeScore:
    """Read ``{"score": n, "reason": ...}`` (even wrapped in prose or fences) or ``Score: n``."""
    for start in (index for index, char in enumerate(reply) if char == "{"):
        try:
            data, _ = _DECODER.raw_decode(reply, start)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "score" in data:
            return _checked(data["score"], str(data.get("reason", "")).strip())
    line = _SCORE_LINE.search(reply)
    if line:
        return _checked(line.group(1), reply.strip()[:300])
    raise JudgeReplyError(f"judge reply has no score: {reply[:120]!r}")


def _checked(raw: object, reason: str) -> JudgeScore:
    try:
        score = round(float(str(raw)))
    except (ValueError, OverflowError):
        raise JudgeReplyError(f"judge score is not a number: {raw!r}") from None
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise JudgeReplyError(f"judge score {score} is outside {MIN_SCORE}-{MAX_SCORE}")
    return JudgeScore(score=score, reason=reason or "(no reason given)")
