"""Ledger writes as a worker makes them, for tests that need a provider request on the ledger,
and rows no current client would write."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from routeq.ledger import ClaimedHop, Ledger


def insert_deep_metadata_query(database_url: str, depth: int) -> uuid.UUID:
    """A queued query (with its route hop) whose metadata is nested ``depth`` deep, as an older
    client could have written it: every claim of its route hop fails its step."""
    query_id = uuid.uuid4()
    metadata = "{}"
    for _ in range(depth):
        metadata = '{"x": ' + metadata + "}"
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO queries (id, text, input_tokens, metadata, status) "
                "VALUES (:id, 'poison', 1, CAST(:m AS jsonb), 'queued')"
            ),
            {"id": query_id, "m": metadata},
        )
        conn.execute(
            sa.text(
                "INSERT INTO hops (query_id, seq, kind, status) VALUES (:id, 1, 'route', 'queued')"
            ),
            {"id": query_id},
        )
    engine.dispose()
    return query_id


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
