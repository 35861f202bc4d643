"""Judging answers: heuristic and summary checks, the LLM judge's prompt and parser, and the
next step."""

from routeq.judges.context import (
    FittedJudgePrompt,
    JudgeBudget,
    JudgePromptTooLargeError,
    fit_judge_messages,
)
from routeq.judges.heuristics import asks_for_code, heuristic_failure
from routeq.judges.llm import (
    JudgeError,
    JudgeReplyError,
    JudgeScore,
    judge_messages,
    parse_judge_reply,
)
from routeq.judges.reasons import (
    accepted_unjudged,
    escalated_unjudged,
    judge_error_detail,
    with_fit_notes,
)
from routeq.judges.summary import summary_failure
from routeq.judges.verdict import (
    Accept,
    Escalate,
    Fail,
    NextStep,
    Verdict,
    after_call_failure,
    after_verdict,
)

__all__ = [
    "Accept",
    "Escalate",
    "Fail",
    "FittedJudgePrompt",
    "JudgeBudget",
    "JudgeError",
    "JudgePromptTooLargeError",
    "JudgeReplyError",
    "JudgeScore",
    "NextStep",
    "Verdict",
    "accepted_unjudged",
    "after_call_failure",
    "after_verdict",
    "asks_for_code",
    "escalated_unjudged",
    "fit_judge_messages",
    "heuristic_failure",
    "judge_error_detail",
    "judge_messages",
    "parse_judge_reply",
    "summary_failure",
    "with_fit_notes",
]
