"""From a verdict to the next step of a query: accept, escalate, or fail. Pure.

Escalation is not a retry: it is a new call hop on the next tier that can hold the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from routeq.config import Settings
from routeq.policies.ladder import tier_for_escalation


@dataclass(frozen=True)
class Verdict:
    """The judge's conclusion on one answer.

    ``source`` says who decided: heuristic checks, the LLM judge, the tier's fail mode when the
    judge itself failed ('judge-error'), or 'skipped' when judging is off for the tier.
    """

    passed: bool
    reason: str
    source: Literal["heuristic", "summary-check", "llm", "judge-error", "skipped"]
    score: float | None = None


@dataclass(frozen=True)
class Accept:
    reason: str
    answer_seq: int | None = None  # which call's answer; None: the one just judged


@dataclass(frozen=True)
class Escalate:
    tier: str
    reason: str


@dataclass(frozen=True)
class Fail:
    reason: str


NextStep = Accept | Escalate | Fail


def after_verdict(settings: Settings, tier: str, verdict: Verdict, input_tokens: int) -> NextStep:
    """Pass accepts; a fail escalates one tier, or at the top accepts the answer and says why."""
    if verdict.passed:
        return Accept(f"judge passed on {tier}: {verdict.reason}")
    above = tier_for_escalation(settings, tier, input_tokens)
    if above is None:
        where = "top tier" if settings.next_tier(tier) is None else "largest-window tier"
        return Accept(f"{where} answer accepted although the judge failed it: {verdict.reason}")
    return Escalate(above.name, f"escalated from {tier}: {verdict.reason}")


def after_call_failure(settings: Settings, tier: str, error: str, input_tokens: int) -> NextStep:
    """A call that could not produce an answer moves up the ladder, or fails the query visibly."""
    above = tier_for_escalation(settings, tier, input_tokens)
    if above is None:
        return Fail(f"call on {tier} failed and no tier is left above it: {error}")
    return Escalate(above.name, f"escalated from {tier} after call failure: {error}")
