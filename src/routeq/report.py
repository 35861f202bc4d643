"""Reports for people: hop tables for the CLI, and totals read from the ledger's views.

Totals come from the reporting views (migration 0005) through named queries
(``routeq.ledger.sql``), so the demo, batch totals, the metrics and a person in psql count
escalations, spend and the all-top-tier counterfactual the same way. The counterfactual's
prices are the top tier's *configured* prices (the database records the tokens, not what the
top tier would have charged), applied in one place: ``routeq.pricing.counterfactual_cost``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from routeq.config import TierConfig
from routeq.ledger import HopView
from routeq.ledger.sql import named
from routeq.pricing import counterfactual_cost


@dataclass(frozen=True)
class QueryTotals:
    """A set of queries as the views see them."""

    queries: int
    done: int
    escalated: int
    cost: Decimal  # everything they paid: routing, judging, retries, escalations
    compared_cost: Decimal  # what the answered ones paid (the counterfactual's comparison)
    top_tier: str
    counterfactual: Decimal  # the answered ones sent straight to the top tier
    final_tiers: dict[str, int]  # final tier (or status, for those without one) -> queries

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.queries if self.queries else 0.0

    @property
    def saved(self) -> float:
        """Share saved against the top tier, over the answered queries."""
        if not self.counterfactual:
            return 0.0
        return float(1 - self.compared_cost / self.counterfactual)


def query_totals(engine: Engine, query_ids: Sequence[uuid.UUID], top: TierConfig) -> QueryTotals:
    """Totals over ``query_ids`` from the ``query_journeys`` and counterfactual views."""
    ids = list(query_ids)
    with engine.connect() as conn:
        row = conn.execute(named("query_totals"), {"query_ids": ids}).one()
        finals = conn.execute(named("query_final_tiers"), {"query_ids": ids}).all()
    return QueryTotals(
        queries=int(row.queries),
        done=int(row.done),
        escalated=int(row.escalated),
        cost=Decimal(row.cost),
        compared_cost=Decimal(row.comparable_cost),
        top_tier=top.name,
        counterfactual=counterfactual_cost(
            top, int(row.top_tier_input_tokens), int(row.top_tier_output_tokens)
        ),
        final_tiers={str(final): int(count) for final, count in finals},
    )


def hops_table(hops: Sequence[HopView]) -> Table:
    table = Table(title=None, show_lines=False)
    for column in (
        "seq",
        "kind",
        "tier",
        "model",
        "status",
        "tries",
        "tokens in/out",
        "cost $",
        "ms",
        "score",
        "reason / error",
    ):
        table.add_column(column, overflow="fold")
    for hop in hops:
        tokens = "" if hop.input_tokens is None else f"{hop.input_tokens}/{hop.output_tokens}"
        if hop.tokens_estimated:
            tokens += " (est.)"
        table.add_row(
            str(hop.seq),
            hop.kind,
            Text(hop.tier or ""),
            Text(hop.model or ""),
            hop.status,
            str(hop.attempts),
            tokens,
            f"{hop.cost:.6f}",
            str(hop.latency_ms or ""),
            "" if hop.score is None else f"{hop.score:g}",
            Text((hop.error or hop.reason or "")[:120]),  # provider text is not markup
        )
    return table
