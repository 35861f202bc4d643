"""How long a step may take, and so how long a lease, a time limit and a visibility timeout last.

One rule sizes all of them: the slowest thing a delivery can do is call its model
``1 + retry.max_retries`` times, each attempt up to the endpoint's ``timeout_s``, with the longest
backoff (or honoured ``Retry-After``) between attempts. Deriving the limits from the tiers keeps
recovery fast when the tiers are fast (a dead worker's hop is taken over after one attempt's
window, not after an hour) and keeps them safe when a tier is slow.

Leases are short and renewed: a claim lasts one step's overhead plus one attempt, and every
provider attempt pushes the lease forward by the attempt it is about to make (see
``Ledger.begin_request``). A worker that dies stops renewing, so its hop is free again within
one attempt's window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class _Endpoint(Protocol):
    timeout_s: float


class _Retry(Protocol):
    max_retries: int
    backoff_max_s: float
    retry_after_max_s: float


# Slack on top of the computed worst case: process start-up, a slow commit, clock skew.
TIME_LIMIT_MARGIN_S = 30
# A retried delivery (an unexpected error in a step) waits at most this long before it runs.
MAX_ERROR_COUNTDOWN_S = 30.0


def longest_pause_s(retry: _Retry) -> float:
    """The longest wait between two attempts: capped backoff or a capped ``Retry-After``."""
    return max(retry.backoff_max_s, retry.retry_after_max_s)


def delivery_worst_case_s(endpoint: _Endpoint, retry: _Retry) -> float:
    """Every attempt of one delivery timing out, with the longest pause between them."""
    attempts = 1 + retry.max_retries
    return attempts * endpoint.timeout_s + retry.max_retries * longest_pause_s(retry)


def claim_lease_s(step_lease_s: float, endpoint: _Endpoint | None) -> float:
    """A fresh claim: the step's own work plus the first attempt of its call, if it calls."""
    return step_lease_s + (endpoint.timeout_s if endpoint is not None else 0.0)


def attempt_lease_s(endpoint: _Endpoint, pause_s: float, margin_s: float) -> float:
    """The lease while a call is made: the pause before the attempt, the attempt, a margin."""
    return pause_s + endpoint.timeout_s + margin_s


@dataclass(frozen=True)
class TimeLimits:
    """Celery's backstops, sized so that they never cut a delivery that is still making
    progress, and so that Redis never redelivers a message that is still being worked on."""

    soft_s: int
    hard_s: int
    visibility_s: int
    longest_lease_s: float
    claim_lease_s: float  # a fresh claim's lease (see ``claim_lease_s``) for the slowest endpoint


def derive_time_limits(
    chains: Iterable[Sequence[_Endpoint]],
    retry: _Retry,
    step_lease_s: float,
    lease_margin_s: float,
    inline_wait_s: float = 0.0,
) -> TimeLimits:
    """The default limits for a ladder: the slowest chain's worst delivery, plus margins.
    A chain is the endpoints one delivery may try in turn (a tier and its fallbacks); a delivery
    may also wait up to ``inline_wait_s`` in all for rate-limit capacity.

    The visibility timeout must outlast the hard limit *and* the longest countdown a message
    may carry (Redis holds a message with a countdown as unacked until it runs): a busy hop is
    retried when its lease ends, an unexpected error after at most ``MAX_ERROR_COUNTDOWN_S``.
    """
    chains = [list(chain) for chain in chains]
    endpoints = [e for chain in chains for e in chain]
    worst = inline_wait_s + max(
        sum(delivery_worst_case_s(e, retry) for e in chain) for chain in chains
    )
    claim = max(claim_lease_s(step_lease_s, e) for e in endpoints)
    longest_lease = max(
        claim,
        max(attempt_lease_s(e, longest_pause_s(retry), lease_margin_s) for e in endpoints),
    )
    soft = math.ceil(worst + step_lease_s)
    hard = soft + TIME_LIMIT_MARGIN_S
    longest_countdown = max(longest_lease, MAX_ERROR_COUNTDOWN_S)
    visibility = math.ceil(hard + longest_countdown + TIME_LIMIT_MARGIN_S)
    return TimeLimits(soft, hard, visibility, longest_lease, claim)


def check_time_limits(
    limits: TimeLimits, required: TimeLimits, explicit: dict[str, int | None]
) -> list[str]:
    """Problems with explicitly configured limits, each naming the field and the fix."""
    problems = []
    if limits.soft_s >= limits.hard_s:
        problems.append("worker.task_soft_time_limit_s must be below worker.task_time_limit_s")
    if limits.visibility_s <= limits.hard_s + limits.longest_lease_s:
        problems.append(
            f"worker.visibility_timeout_s ({limits.visibility_s}) must exceed "
            f"task_time_limit_s + the longest lease ({limits.hard_s} + "
            f"{limits.longest_lease_s:g} s), or Redis redelivers tasks that are still running "
            "or waiting for their countdown"
        )
    if explicit.get("task_soft_time_limit_s") is not None and limits.soft_s < required.soft_s:
        problems.append(
            f"worker.task_soft_time_limit_s ({limits.soft_s}) is shorter than the slowest "
            f"delivery the tiers allow ({required.soft_s} s: (1 + retry.max_retries) x timeout_s "
            "plus the pauses between attempts, plus worker.step_lease_s); raise it, or lower "
            "timeout_s / retry.max_retries, or leave it unset to derive it"
        )
    return problems
