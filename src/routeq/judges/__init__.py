"""Judging answers: heuristic and summary checks, the LLM judge's prompt and parser, and the
next step."""

from routeq.judges.heuristics import asks_for_code, heuristic_failure
from routeq.judges.llm import JudgeReplyError, JudgeScore, judge_messages, parse_judge_reply
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
    "JudgeReplyError",
    "JudgeScore",
    "NextStep",
    "Verdict",
    "after_call_failure",
    "after_verdict",
    "asks_for_code",
    "heuristic_failure",
    "judge_messages",
    "parse_judge_reply",
    "summary_failure",
]
