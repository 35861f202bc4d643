"""The words a hop's reason uses when the LLM judge could not grade an answer. Pure.

A reason must say what happened. An answer accepted because the judge failed and the tier fails
open was recorded as "judge passed on cheap: judge failed, answer accepted", which reads as a
pass; it is "accepted unjudged on cheap (judge failed, fail open): ...". And the failure itself
is named by kind (the judge call, its reply, or a prompt too long for it), so the ledger tells a
broken judge from a judge whose window is too small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from routeq.errors import ContextLengthExceededError, ProviderError
from routeq.judges.context import JudgePromptTooLargeError
from routeq.judges.llm import JudgeReplyError

__all__ = [
    "FailMode",
    "accepted_unjudged",
    "escalated_unjudged",
    "judge_error_detail",
    "with_fit_notes",
]

FailMode = Literal["open", "closed"]


def judge_error_detail(error: BaseException, text: str | None = None) -> str:
    """What went wrong with the judge, by kind: ``text`` is the error's own (scrubbed, short)
    text, ``str(error)`` when omitted.

    - the judge model refused the prompt as too long: "judge prompt too long for the judge
      model: ..." (set ``judge.context_window`` so prompts are shortened to fit);
    - no useful prompt fits the configured window: "judge prompt cannot fit: ...";
    - the reply had no usable score: "unusable judge reply: ...";
    - the call failed otherwise: "judge call failed: ...".
    """
    text = str(error) if text is None else text
    if isinstance(error, ContextLengthExceededError):
        return f"judge prompt too long for the judge model: {text}"
    if isinstance(error, JudgePromptTooLargeError):
        return f"judge prompt cannot fit: {text}"
    if isinstance(error, JudgeReplyError):
        return f"unusable judge reply: {text}"
    if isinstance(error, ProviderError):
        return f"judge call failed: {text}"
    return f"judge failed: {text}"


def accepted_unjudged(tier: str, fail_mode: FailMode, detail: str) -> str:
    """The reason of an answer accepted without a verdict: the tier fails open, or it fails
    closed but no tier above can take the query."""
    if fail_mode == "open":
        return f"accepted unjudged on {tier} (judge failed, fail open): {detail}"
    return f"accepted unjudged on {tier} (judge failed, fail closed, no tier above): {detail}"


def escalated_unjudged(tier: str, to_tier: str, detail: str) -> str:
    """The reason of an escalation because the judge failed and the tier fails closed."""
    return f"escalated unjudged from {tier} to {to_tier} (judge failed, fail closed): {detail}"


def with_fit_notes(reason: str, notes: Sequence[str]) -> str:
    """``reason`` followed by what the judge did not see (``FittedJudgePrompt.notes``), so a
    verdict on a shortened prompt is never recorded as one on the whole."""
    return f"{reason} [{'; '.join(notes)}]" if notes else reason
