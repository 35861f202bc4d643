"""Which budgets a call is charged to, and what it must reserve: pure rules, no I/O.

A budget (``[[spend.budgets]]``) limits the spend of a scope over a period. A call is charged
to every budget whose scope the query belongs to: its user, a metadata tag's value, its API
key's id, its batch. The ledger reserves the call's worst case against each of them, all or
none, in the transaction that records the attempt (``Ledger.begin_request``), and settles the
real cost when the attempt finishes; see docs/budgets.md.

Shadows are not charged: they are the operator's measurement, not the user's calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from routeq.config import BudgetConfig, ModelEndpoint, SpendConfig
from routeq.pricing import call_cost
from routeq.records import QueryInput, QueryRole

# A provider may count a prompt's tokens differently from routeq (a small open model counted
# 18% more): the reservation adds this much to routeq's count, so the real cost stays under it.
PROMPT_TOKEN_MARGIN = 0.25


@dataclass(frozen=True)
class Charge:
    """One budget a call is charged to: its name, whose spend (the subject), its period."""

    budget: str
    subject: str
    period: str
    limit_usd: Decimal


def charges(spend: SpendConfig, query: QueryInput, batch_id: str | None = None) -> list[Charge]:
    """The budgets ``query``'s calls are charged to (``batch_id``: its batch, if any)."""
    if query.role is QueryRole.SHADOW:
        return []
    found = []
    for budget in spend.budgets:
        subject = _subject(budget, query, batch_id)
        if subject is None or (budget.subject is not None and budget.subject != subject):
            continue
        found.append(Charge(budget.name, subject, budget.period, budget.limit_usd))
    return found


def _subject(budget: BudgetConfig, query: QueryInput, batch_id: str | None) -> str | None:
    if budget.scope == "user":
        return query.user
    if budget.scope == "api_key":
        return query.api_key_id
    if budget.scope == "batch":
        return batch_id
    assert budget.tag is not None
    value: Any = query.metadata.get(budget.tag)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:200]


def needs_batch(spend: SpendConfig) -> bool:
    """Whether a budget is charged by batch (the steps then look up a query's batch)."""
    return any(budget.scope == "batch" for budget in spend.budgets)


def reservation(endpoint: ModelEndpoint, prompt_tokens: int) -> Decimal:
    """What an attempt reserves: its prompt (with the margin) and its whole output allowance."""
    counted = math.ceil(prompt_tokens * (1 + PROMPT_TOKEN_MARGIN))
    return call_cost(endpoint, counted, endpoint.max_output_tokens)


def on_exceed(spend: SpendConfig, budget: str) -> str:
    """What the named budget does with a call it cannot afford: "fail" or "cheaper"."""
    for config in spend.budgets:
        if config.name == budget:
            return config.on_exceed
    return "fail"  # the per-query maximum
