"""From a verdict to the next step of a query: accept, escalate, or fail. Pure.

Escalation is not a retry: it is a new call hop on the tier the escalation policy names
(``policies.escalation``; one tier up by default). Reasons say what really happened: an answer
the judge could not grade is "accepted unjudged", never "judge passed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from routeq.config import Settings
from routeq.judges.reasons import accepted_unjudged, escalated_unjudged
from routeq.policies.escalation import EscalationPolicy, NextTier


@dataclass(frozen=True)
class Verdict:
    """The judge's conclusion on one answer.

    ``source`` says who decided: heuristic checks, the summary checks, a trained verifier of cheap
    answers, the LLM judge, the tier's
    fail mode when the judge itself failed ('judge-error'), or 'skipped' when judging is off.
    """

    passed: bool
    reason: str
    source: Literal["heuristic", "summary-check", "verifier", "llm", "judge-error", "skipped"]
    score: float | None = None

    @property
    def unjudged(self) -> bool:
        """The judge could not grade the answer; the tier's fail mode decided."""
        return self.source == "judge-error"


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

ONE_TIER_UP = NextTier()


def after_verdict(
    settings: Settings,
    tier: str,
    verdict: Verdict,
    input_tokens: int,
    escalation: EscalationPolicy = ONE_TIER_UP,
) -> NextStep:
    """A pass accepts; a fail escalates where the escalation policy says, or, when it names no
    tier, accepts the answer and says why."""
    if verdict.passed and verdict.unjudged:
        return Accept(accepted_unjudged(tier, "open", verdict.reason))
    if verdict.passed:
        return Accept(f"judge passed on {tier}: {verdict.reason}")
    above = escalation.next_tier(settings, tier, input_tokens)
    if verdict.unjudged:
        if above is None:
            return Accept(accepted_unjudged(tier, "closed", verdict.reason))
        return Escalate(above.name, escalated_unjudged(tier, above.name, verdict.reason))
    if above is None:
        if settings.next_tier(tier) is None:
            where = "top tier"
        elif escalation.name == "next-tier":
            where = "largest-window tier"
        else:
            where = f"{tier} (escalation policy {escalation.name!r} goes no higher)"
        return Accept(f"{where} answer accepted although the judge failed it: {verdict.reason}")
    return Escalate(above.name, f"escalated from {tier}: {verdict.reason}")


def after_call_failure(
    settings: Settings,
    tier: str,
    error: str,
    input_tokens: int,
    escalation: EscalationPolicy = ONE_TIER_UP,
) -> NextStep:
    """A call that could not produce an answer moves up the ladder, or fails the query visibly."""
    above = escalation.next_tier(settings, tier, input_tokens)
    if above is None:
        where = _no_tier_above(settings, tier, escalation)
        return Fail(f"call on {tier} failed and {where}: {error}")
    return Escalate(above.name, f"escalated from {tier} after call failure: {error}")


def _no_tier_above(settings: Settings, tier: str, escalation: EscalationPolicy) -> str:
    if settings.next_tier(tier) is None:
        return "no tier is left above it"
    if escalation.name == "next-tier":
        return "no tier above it holds the query"
    return f"escalation policy {escalation.name!r} names no tier above it"
