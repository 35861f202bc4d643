"""Ledger writes as a worker makes them, for tests that need a provider request on the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from routeq.ledger import ClaimedHop, Ledger


def record_request(
    ledger: Ledger,
    hop: ClaimedHop,
    *,
    try_number: int,
    model: str,
    input_price: Decimal,
    output_price: Decimal,
    **result: Any,
) -> int:
    """One provider attempt, start to end: ``begin_request`` (pending, before it is sent), then
    ``finish_request`` with ``result`` (outcome, latency_ms, cost, tokens, status, error)."""
    request_id = ledger.begin_request(
        hop, try_number=try_number, model=model, input_price=input_price, output_price=output_price
    )
    ledger.finish_request(hop, request_id, **result)
    return request_id
