"""The hot path's statements run at the driver (``ledger.hotexec``): the same rows as
SQLAlchemy's execution returns, in the connection's transaction, with its errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from routeq.ledger import Ledger, hotexec
from routeq.ledger.hotpath import begin_request_statement, claim_statement, finish_statement
from routeq.records import (
    ClaimedHop,
    HopKind,
    HopResult,
    HopStatus,
    NewQuery,
    NextHop,
    RequestDone,
    Usage,
)

pytestmark = pytest.mark.integration

LEASE = 600.0


def judge_hop_waiting(ledger: Ledger) -> tuple[uuid.UUID, ClaimedHop]:
    """A query routed and answered (a call hop with its output), its judge hop queued; the
    query has metadata, chat turns and parameters, so every kind of column comes back."""
    [entry] = ledger.submit(
        [
            NewQuery(
                text="And in French?",
                input_tokens=9,
                metadata={"team": "docs", "n": 3},
                user="ana",
                messages=[
                    {"role": "user", "content": "Say hello."},
                    {"role": "user", "content": "And in French?"},
                ],
                params={"temperature": 0.2},
            )
        ]
    )
    query_id = entry.query_id
    route = ledger.claim(query_id, 1, lease_s=LEASE, max_deliveries=3).hop
    assert route is not None
    call = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed")
    ledger.finish_hop(route, status=HopStatus.DONE, result=HopResult(tier="cheap"), next_hop=call)
    hop = ledger.claim(query_id, 2, lease_s=LEASE, max_deliveries=3).hop
    assert hop is not None
    usage = Usage("Bonjour.", "stop", 9, 2, False, 40)
    judge = NextHop(query_id, 3, HopKind.JUDGE, "cheap", None, reason="judge")
    ledger.finish_hop(hop, status=HopStatus.DONE, result=HopResult(usage=usage), next_hop=judge)
    return query_id, hop


def both_ways(ledger: Ledger, run: Callable[[sa.Connection], Any]) -> tuple[Any, Any]:
    """``run`` at the driver and through SQLAlchemy, each in a transaction rolled back."""
    results = []
    for listener in (None, lambda *_: None):
        if listener is not None:
            sa.event.listen(ledger.engine, "before_cursor_execute", listener)
        try:
            with ledger.engine.connect() as conn:
                conn.begin()
                results.append(run(conn))
                conn.rollback()
        finally:
            if listener is not None:
                sa.event.remove(ledger.engine, "before_cursor_execute", listener)
    return results[0], results[1]


def as_rows(rows: Any) -> list[tuple[tuple[str, ...], tuple[Any, ...]]]:
    return [(tuple(row._fields), tuple(row)) for row in rows]


def test_a_judge_claim_reads_the_same_row_at_the_driver(ledger: Ledger) -> None:
    query_id, _ = judge_hop_waiting(ledger)
    params = {"claim_query": query_id, "claim_seq": 3, "claim_lease_s": 60.0, "claim_worker": "w"}

    def claim(conn: sa.Connection) -> Any:
        return as_rows(hotexec.execute(conn, claim_statement(True), params))

    driver, orm = both_ways(ledger, claim)

    assert len(driver) == 1
    assert driver == orm
    fields, values = driver[0]
    row = dict(zip(fields, values, strict=True))
    assert row["messages"][1] == {"role": "user", "content": "And in French?"}
    assert row["params"] == {"temperature": 0.2}
    assert row["answer_output"] == "Bonjour." and isinstance(row["query_id"], uuid.UUID)


def test_a_pending_request_and_a_finish_write_the_same_at_the_driver(ledger: Ledger) -> None:
    [other] = ledger.submit([NewQuery(text="What is 2 + 2?", input_tokens=7)])
    route = ledger.claim(other.query_id, 1, lease_s=LEASE, max_deliveries=3).hop
    assert route is not None
    call = NextHop(other.query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed")
    ledger.finish_hop(route, status=HopStatus.DONE, result=HopResult(tier="cheap"), next_hop=call)
    hop = ledger.claim(other.query_id, 2, lease_s=LEASE, max_deliveries=3).hop
    assert hop is not None
    prices = {"req_input_price": Decimal("0.15"), "req_output_price": Decimal("0.6")}

    def call_and_finish(conn: sa.Connection) -> Any:
        [pending] = hotexec.execute(
            conn,
            begin_request_statement(),
            {
                "req_hop": hop.id,
                "req_delivery": hop.delivery,
                "req_lease_s": 30.0,
                "req_try": 1,
                "req_model": "sim-small",
                "req_max_cost": Decimal("0.001"),
                **prices,
            },
        )
        done = RequestDone(hop, pending.id, "ok", 40, Decimal("0.000012"), 7, 2, False, 200, None)
        statement, params = finish_statement(
            hop,
            HopStatus.DONE,
            HopResult(usage=Usage("4", "stop", 7, 2, False, 40), details={"n": [1, 2]}).columns(),
            NextHop(other.query_id, 3, HopKind.JUDGE, "cheap", None, reason="judge"),
            done,
        )
        finished = hotexec.execute(conn, statement, params)
        written = conn.execute(
            sa.text(
                "SELECT h.status, h.details, h.output, h.cost, q.total_cost, r.outcome, "
                "j.status FROM hops h JOIN queries q ON q.id = h.query_id "
                "JOIN provider_requests r ON r.hop_id = h.id "
                "JOIN hops j ON j.query_id = h.query_id AND j.seq = 3 WHERE h.id = :hop"
            ),
            {"hop": hop.id},
        ).all()
        return [tuple(row) for row in finished], [tuple(row) for row in written]

    driver, orm = both_ways(ledger, call_and_finish)

    assert driver == orm
    cost = Decimal("0.000012")
    assert driver[1] == [("done", {"n": [1, 2]}, "4", cost, cost, "ok", "queued")]


def test_what_runs_at_the_driver_commits_with_the_connection(ledger: Ledger) -> None:
    [entry] = ledger.submit([NewQuery(text="What is 2 + 2?", input_tokens=7)])
    params = {
        "claim_query": entry.query_id,
        "claim_seq": 1,
        "claim_lease_s": 60.0,
        "claim_worker": "w",
        "claim_idle_ms": "60000",
    }
    with ledger.engine.connect() as conn:
        assert hotexec.execute(conn, claim_statement(False, True), params)
        conn.commit()
    with ledger.engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM hops WHERE query_id = :q"), {"q": entry.query_id}
        ).scalar_one()
    assert status == "running"


def test_a_lost_connection_at_the_driver_fails_as_sqlalchemy_fails(ledger: Ledger) -> None:
    # Given a connection whose server process is gone
    [entry] = ledger.submit([NewQuery(text="What is 2 + 2?", input_tokens=7)])
    params = {"claim_query": entry.query_id, "claim_seq": 1, "claim_lease_s": 60.0}
    with ledger.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with ledger.engine.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # When a hot statement runs on it
        with pytest.raises(sa.exc.OperationalError) as failed:
            hotexec.execute(conn, claim_statement(False), params | {"claim_worker": "w"})
    # Then the error is SQLAlchemy's, the connection invalidated (the pool drops it)
    assert failed.value.connection_invalidated
    # and the ledger goes on on a fresh connection
    claim = ledger.claim(entry.query_id, 1, lease_s=LEASE, max_deliveries=3)
    assert claim.hop is not None and claim.hop.delivery == 1


def test_a_caller_parameter_in_an_in_list_is_refused() -> None:
    from sqlalchemy.dialects.postgresql import psycopg

    table = sa.table("hops", sa.column("status"))
    statement = sa.select(table.c.status).where(
        table.c.status.in_(sa.bindparam("wanted", expanding=True))
    )
    with pytest.raises(ValueError, match="IN list"):
        hotexec.compile_for(statement, psycopg.dialect())  # type: ignore[no-untyped-call]


def test_a_watched_connection_runs_the_statement_through_sqlalchemy(ledger: Ledger) -> None:
    # Given an engine whose statements are logged after they run
    [entry] = ledger.submit([NewQuery(text="What is 2 + 2?", input_tokens=7)])
    seen: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    params = {"claim_query": entry.query_id, "claim_seq": 1, "claim_lease_s": 60.0}
    sa.event.listen(ledger.engine, "after_cursor_execute", after)
    try:
        with ledger.engine.connect() as conn:
            rows = hotexec.execute(conn, claim_statement(False), params | {"claim_worker": "w"})
            conn.commit()
    finally:
        sa.event.remove(ledger.engine, "after_cursor_execute", after)
    # Then the listener saw the claim that ran
    assert len(rows) == 1 and rows[0].seq == 1
    assert [s for s in seen if s.startswith("WITH claimed")]
