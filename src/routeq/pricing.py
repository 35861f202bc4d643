"""Cost of a model call from token counts and the tier's list prices. Pure."""

from __future__ import annotations

from decimal import Decimal

from routeq.config import ModelEndpoint

_PER_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.0000000001")  # matches the ledger's Numeric(20, 10)


def call_cost(endpoint: ModelEndpoint, input_tokens: int, output_tokens: int) -> Decimal:
    """USD for one request, rounded to the ledger's precision so sums in SQL and Python agree."""
    cost = (
        Decimal(input_tokens) * endpoint.input_price_per_mtok
        + Decimal(output_tokens) * endpoint.output_price_per_mtok
    ) / _PER_MILLION
    return cost.quantize(_QUANTUM)


def counterfactual_cost(top: ModelEndpoint, input_tokens: int, output_tokens: int) -> Decimal:
    """The all-top-tier counterfactual: what calls with these token totals cost at the top
    tier's configured prices. The ledger records the tokens of each answered query's accepted
    call (the ``top_tier_counterfactual`` view), not what the top tier would have charged, so
    every report (metrics, batch totals, the demo) prices them here, on the totals, alike."""
    return call_cost(top, input_tokens, output_tokens)
