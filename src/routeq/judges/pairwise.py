"""The pairwise judge: which of two answers to one question is better. Pure.

A shadow's answer and the answer the user kept are each scored alone (pointwise), as every
answer is. With ``shadow.pairwise`` on, the judge also sees both side by side. The two readings
should agree: when the pointwise scores rank the answers one way and the side-by-side verdict
the other, the judge is unreliable on that kind of answer, and its pass rate says less than it
seems. The report counts how often they agree (docs/shadow.md).

Judges favour the answer they read first, so which answer is shown first is decided per query
(``shadow_first``), half of the sample each way, and the verdict is mapped back.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Final, Literal

from routeq.judges.llm import JudgeReplyError

Preference = Literal["original", "shadow", "tie"]

PAIRWISE_RUBRIC: Final = (
    "Compare two answers to the same question. Decide which answer is better: more correct, "
    "more complete, and more useful to the person who asked. If neither is better, say tie. "
    'Reply with JSON only: {"better": "A" | "B" | "tie", "reason": "<one sentence>"}.'
)

_BETTER: Final = re.compile(r"[\"']?better[\"']?\s*[:=]\s*[\"']?(A|B|tie)\b", re.IGNORECASE)


def shadow_first(shadow_id: uuid.UUID) -> bool:
    """Whether the shadow's answer is shown as answer A: by a bit of its id that the sampling
    does not use, so the order is balanced across the sample and the same on a re-delivery."""
    return shadow_id.int & 1 == 1


def pairwise_messages(
    question: str, original: str, shadow: str, *, shadow_shown_first: bool
) -> list[dict[str, str]]:
    """The judge's messages for a side-by-side comparison of the two answers."""
    first, second = (shadow, original) if shadow_shown_first else (original, shadow)
    return [
        {"role": "system", "content": "You grade answers strictly and fairly. " + PAIRWISE_RUBRIC},
        {
            "role": "user",
            "content": (
                f"Question:\n{question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n\n"
                "Your verdict (JSON):"
            ),
        },
    ]


def parse_pairwise_reply(reply: str, *, shadow_shown_first: bool) -> Preference:
    """Which answer the judge preferred, from its reply. Raises :class:`JudgeReplyError` when
    the reply names no choice, or names both."""
    choice = _choice(reply)
    if choice == "tie":
        return "tie"
    shadow_letter = "A" if shadow_shown_first else "B"
    return "shadow" if choice == shadow_letter else "original"


def _choice(reply: str) -> str:
    try:
        data = json.loads(reply.strip().removeprefix("```json").strip("`\n "))
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("better"), str):
        found = {data["better"].strip()}
    else:
        found = {match.group(1) for match in _BETTER.finditer(reply)}
    normal = {"A" if f.upper() == "A" else "B" if f.upper() == "B" else f.lower() for f in found}
    if len(normal) != 1 or not normal <= {"A", "B", "tie"}:
        raise JudgeReplyError(f"pairwise judge reply names no single choice: {reply[:120]!r}")
    return normal.pop()
