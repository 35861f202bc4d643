"""The reasons recorded when the LLM judge could not grade an answer (routeq.judges.reasons)."""

from __future__ import annotations

import pytest

from routeq.errors import (
    ContextLengthExceededError,
    PermanentProviderError,
    TransientProviderError,
)
from routeq.judges import (
    JudgePromptTooLargeError,
    JudgeReplyError,
    accepted_unjudged,
    escalated_unjudged,
    judge_error_detail,
    with_fit_notes,
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ContextLengthExceededError("HTTP 400 context length exceeded: max 2048"),
            "judge prompt too long for the judge model: HTTP 400 context length exceeded: max 2048",
        ),
        (
            JudgePromptTooLargeError("window too small"),
            "judge prompt cannot fit: window too small",
        ),
        (
            JudgeReplyError("judge reply has no score"),
            "unusable judge reply: judge reply has no score",
        ),
        (TransientProviderError("timed out after 10s"), "judge call failed: timed out after 10s"),
        (PermanentProviderError("HTTP 401: bad key"), "judge call failed: HTTP 401: bad key"),
        (RuntimeError("boom"), "judge failed: boom"),
    ],
    ids=["context-length", "cannot-fit", "reply", "transient", "permanent", "other"],
)
def test_the_detail_names_the_kind_of_failure(error: BaseException, expected: str) -> None:
    assert judge_error_detail(error) == expected


def test_the_detail_uses_the_callers_scrubbed_text() -> None:
    error = PermanentProviderError("HTTP 401: key sk-secret")
    assert judge_error_detail(error, "HTTP 401: key [REDACTED]") == (
        "judge call failed: HTTP 401: key [REDACTED]"
    )


def test_fail_open_reads_as_accepted_unjudged_never_as_a_pass() -> None:
    reason = accepted_unjudged("cheap", "open", "judge call failed: timed out after 10s")
    assert reason == (
        "accepted unjudged on cheap (judge failed, fail open): "
        "judge call failed: timed out after 10s"
    )
    assert "passed" not in reason


def test_fail_closed_without_a_tier_above_is_accepted_unjudged() -> None:
    assert accepted_unjudged("frontier", "closed", "unusable judge reply: no score") == (
        "accepted unjudged on frontier (judge failed, fail closed, no tier above): "
        "unusable judge reply: no score"
    )


def test_fail_closed_escalation_names_both_tiers() -> None:
    assert escalated_unjudged("cheap", "mid", "judge call failed: HTTP 500") == (
        "escalated unjudged from cheap to mid (judge failed, fail closed): "
        "judge call failed: HTTP 500"
    )


def test_fit_notes_are_appended_to_a_verdict() -> None:
    notes = ("judge saw 1,298 of 53,012 source tokens (head and tail)",)
    assert with_fit_notes("score 8/10 (pass >= 6): faithful", notes) == (
        "score 8/10 (pass >= 6): faithful [judge saw 1,298 of 53,012 source tokens (head and tail)]"
    )
    assert with_fit_notes("score 8/10", ()) == "score 8/10"
