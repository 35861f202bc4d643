"""The hop ledger against a real Postgres: migrations, submission, claims, fencing and money."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from ledger_helpers import record_request
from sqlalchemy.exc import IntegrityError

from routeq.errors import DeliverySupersededError
from routeq.ledger import (
    Base,
    ClaimedHop,
    HopKind,
    HopStatus,
    Ledger,
    NewQuery,
    NextHop,
    QueryOutcome,
    QueryStatus,
)
from routeq.ledger.migrate import alembic_config, current_head, upgrade
from routeq.records import HopResult, RequestDone, Usage

try:
    from conftest import ADMIN_URL
except ImportError:  # pragma: no cover - conftest is always importable under pytest
    ADMIN_URL = os.environ.get(
        "ROUTEQ_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )

pytestmark = pytest.mark.integration

LEASE = 600.0  # long enough that a fresh claim is never considered expired during a test
MAX_DELIVERIES = 3


# -- helpers ---------------------------------------------------------------------------------------


def submit_one(ledger: Ledger, text: str = "What is 2 + 2?", **fields: Any) -> uuid.UUID:
    [entry] = ledger.submit([NewQuery(text=text, input_tokens=7, **fields)])
    assert entry.created
    return entry.query_id


def rows(ledger: Ledger, sql: str, **params: Any) -> list[Any]:
    with ledger.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def hop_rows(ledger: Ledger, query_id: uuid.UUID) -> list[Any]:
    return rows(ledger, "SELECT * FROM hops WHERE query_id = :q ORDER BY seq", q=query_id)


def query_row(ledger: Ledger, query_id: uuid.UUID) -> Any:
    [row] = rows(ledger, "SELECT * FROM queries WHERE id = :q", q=query_id)
    return row


def claim(ledger: Ledger, query_id: uuid.UUID, seq: int, *, lease_s: float = LEASE) -> Any:
    return ledger.claim(query_id, seq, lease_s=lease_s, max_deliveries=MAX_DELIVERIES)


def claimed(ledger: Ledger, query_id: uuid.UUID, seq: int, *, lease_s: float = LEASE) -> ClaimedHop:
    result = claim(ledger, query_id, seq, lease_s=lease_s)
    assert result.state == "claimed", result
    assert result.hop is not None
    return result.hop


def route_to_cheap(ledger: Ledger, query_id: uuid.UUID, lease_s: float = 600) -> ClaimedHop:
    """Finish the route hop with a call hop on 'cheap' and claim that call hop."""
    route = claimed(ledger, query_id, 1)
    call = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed: test")
    assert ledger.finish_hop(
        route, status=HopStatus.DONE, result=HopResult(tier="cheap"), next_hop=call
    )
    return claimed(ledger, query_id, 2, lease_s=lease_s)


# -- migrations ------------------------------------------------------------------------------------


def test_migrations_and_models_agree(migrated_url: str) -> None:
    engine = sa.create_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            revision = context.get_current_revision()
    finally:
        engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"
    assert revision == current_head()


def test_upgrade_on_an_empty_database_reaches_head(scratch_url: str) -> None:
    head = current_head()
    assert head is not None
    assert ScriptDirectory.from_config(alembic_config(scratch_url)).get_current_head() == head

    upgrade(scratch_url)
    upgrade(scratch_url)  # a second upgrade is a no-op

    engine = sa.create_engine(scratch_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == head
            assert compare_metadata(context, Base.metadata) == []
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"queries", "hops", "provider_requests", "alembic_version"} <= tables


# -- submit ----------------------------------------------------------------------------------------


def test_submit_creates_query_and_queued_route_hop(ledger: Ledger) -> None:
    query_id = submit_one(ledger, metadata={"team": "a"}, user="u1")

    query = query_row(ledger, query_id)
    assert query.status == "queued"
    assert query.text == "What is 2 + 2?"
    assert query.metadata == {"team": "a"} and query.user_id == "u1"
    assert query.total_cost == Decimal(0)
    [hop] = hop_rows(ledger, query_id)
    assert (hop.seq, hop.kind, hop.status, hop.attempts) == (1, "route", "queued", 0)


def test_idempotency_key_returns_the_original_without_a_second_hop(ledger: Ledger) -> None:
    first = ledger.submit([NewQuery("hello", 1, idempotency_key="key-1")])
    again = ledger.submit([NewQuery("hello, edited", 2, idempotency_key="key-1")])

    assert first[0].created and not again[0].created
    assert again[0].query_id == first[0].query_id
    assert len(rows(ledger, "SELECT id FROM queries")) == 1
    assert len(hop_rows(ledger, first[0].query_id)) == 1
    assert query_row(ledger, first[0].query_id).text == "hello"


def test_a_bulk_submission_keeps_order_and_idempotency(ledger: Ledger) -> None:
    """Many queries go in a few multi-row INSERTs; each still gets what one submission gets."""
    [old] = ledger.submit([NewQuery("old", 1, idempotency_key="old")])
    items = [
        NewQuery("a", 1),
        NewQuery("old again", 1, idempotency_key="old"),
        NewQuery("b", 1, idempotency_key="b"),
        NewQuery("b twice", 1, idempotency_key="b"),
        *(NewQuery(f"q{n}", 1) for n in range(1500)),  # more than one INSERT's worth of rows
    ]
    submitted = ledger.submit(items)
    assert len(submitted) == len(items)
    assert [entry.created for entry in submitted[:4]] == [True, False, True, False]
    assert submitted[1].query_id == old.query_id and submitted[3].query_id == submitted[2].query_id
    texts = dict(rows(ledger, "SELECT id, text FROM queries"))
    assert [texts[entry.query_id] for entry in submitted[4:7]] == ["q0", "q1", "q2"]
    assert texts[submitted[0].query_id] == "a" and texts[old.query_id] == "old"
    assert len(texts) == 1 + 1 + 1 + 1500
    route_hops = rows(ledger, "SELECT query_id FROM hops WHERE seq = 1 AND status = 'queued'")
    assert len(route_hops) == len(texts)


def test_a_bulk_submission_stores_each_column_as_a_single_one_does(ledger: Ledger) -> None:
    """The bulk INSERT (one array per column) and the single INSERT agree on every value,
    JSON ``null`` included."""
    from routeq.ledger.repository import submit_query

    full = NewQuery(
        "full",
        3,
        metadata={"team": "a", "n": [1, 2]},
        user="u1",
        messages=[{"role": "user", "content": "full"}],
        params={"temperature": 0.2},
        api_key_id="k1",
        privacy="redact",
    )
    bare = NewQuery("bare", 1)
    bulk = [entry.query_id for entry in ledger.submit([full, bare])]
    with ledger.engine.begin() as conn:
        single = [submit_query(conn, item).query_id for item in (full, bare)]
    columns = (
        "text, input_tokens, metadata, user_id, task, messages, params, role, status, "
        "api_key_id, privacy, jsonb_typeof(task) AS task_type, jsonb_typeof(params) AS p_type"
    )

    def row(query_id: uuid.UUID) -> tuple[Any, ...]:
        [found] = rows(ledger, f"SELECT {columns} FROM queries WHERE id = :q", q=query_id)
        return tuple(found)

    assert [row(q) for q in bulk] == [row(q) for q in single]


def test_a_bulk_submission_refuses_a_value_too_long_for_its_column(ledger: Ledger) -> None:
    with pytest.raises(sa.exc.DataError, match="too long"):
        ledger.submit([NewQuery("a", 1), NewQuery("b", 1, user="u" * 201)])
    assert rows(ledger, "SELECT id FROM queries") == []


def test_hop_seq_is_unique_per_query(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    with pytest.raises(IntegrityError), ledger.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO hops (query_id, seq, kind, status) VALUES (:q, 1, 'route', 'queued')"
            ),
            {"q": query_id},
        )
    assert len(hop_rows(ledger, query_id)) == 1


# -- claims and fencing ----------------------------------------------------------------------------


def test_claim_lifecycle(ledger: Ledger) -> None:
    query_id = submit_one(ledger)

    first = claim(ledger, query_id, 1)
    assert first.state == "claimed" and first.hop is not None
    assert first.hop.delivery == 1 and first.hop.kind == "route" and first.hop.seq == 1
    [hop] = hop_rows(ledger, query_id)
    assert hop.status == "running" and hop.attempts == 1 and hop.started_at is not None
    assert query_row(ledger, query_id).status == "running"

    busy = claim(ledger, query_id, 1)
    assert busy.state == "busy" and busy.hop is None
    assert busy.retry_in > 0

    assert ledger.finish_hop(first.hop, status=HopStatus.DONE, result=HopResult(reason="routed"))
    assert claim(ledger, query_id, 1).state == "finished"
    [hop] = hop_rows(ledger, query_id)
    assert hop.status == "done" and hop.attempts == 1 and hop.finished_at is not None


def test_expired_lease_is_reclaimed_and_the_stale_delivery_is_fenced(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    # The worker holding delivery 1 "crashed": its zero lease ran out, the hop is claimable again.
    stale = claimed(ledger, query_id, 1, lease_s=0)
    fresh = claimed(ledger, query_id, 1)
    assert (stale.delivery, fresh.delivery) == (1, 2)
    assert fresh.id == stale.id

    next_hop = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="stale")
    assert not ledger.finish_hop(
        stale,
        status=HopStatus.DONE,
        result=HopResult(reason="from the stale delivery"),
        next_hop=next_hop,
        outcome=QueryOutcome(QueryStatus.FAILED, "stale delivery"),
    )
    [hop] = hop_rows(ledger, query_id)
    assert hop.status == "running" and hop.attempts == 2 and hop.reason is None
    query = query_row(ledger, query_id)
    assert query.status == "running" and query.final_reason is None

    assert ledger.finish_hop(fresh, status=HopStatus.DONE, result=HopResult(reason="fresh"))
    [hop] = hop_rows(ledger, query_id)
    assert hop.status == "done" and hop.reason == "fresh"
    # and the stale delivery cannot overwrite a finished hop either
    assert not ledger.finish_hop(stale, status=HopStatus.FAILED, result=HopResult(error="late"))
    assert hop_rows(ledger, query_id)[0].error is None


def test_claims_beyond_max_deliveries_exhaust_the_hop(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    for delivery in range(1, MAX_DELIVERIES + 1):
        assert claimed(ledger, query_id, 1, lease_s=0).delivery == delivery

    exhausted = claim(ledger, query_id, 1, lease_s=0)

    assert exhausted.state == "exhausted"
    assert exhausted.hop is not None and exhausted.hop.delivery == MAX_DELIVERIES + 1
    [hop] = hop_rows(ledger, query_id)
    assert hop.status == "failed" and hop.finished_at is not None
    assert "deliveries" in hop.error and str(MAX_DELIVERIES) in hop.error
    assert claim(ledger, query_id, 1, lease_s=0).state == "finished"


def test_released_hop_is_claimable_at_once_and_still_counts_deliveries(ledger: Ledger) -> None:
    # Given a step that died of an unexpected error while holding a fresh claim
    query_id = submit_one(ledger)
    first = claimed(ledger, query_id, 1)
    assert claim(ledger, query_id, 1).state == "busy"

    # When the task hands the hop back
    assert ledger.release(first)

    # Then the retry claims it without waiting for the lease, as the next delivery
    second = claimed(ledger, query_id, 1)
    assert second.delivery == first.delivery + 1
    # and the stale delivery stays fenced out: it can neither finish nor release the hop
    assert not ledger.finish_hop(first, status=HopStatus.DONE, result=HopResult())
    assert not ledger.release(first)
    assert claim(ledger, query_id, 1).state == "busy"


def test_a_delivery_whose_lease_was_taken_over_does_not_call_again(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    stale = claimed(ledger, query_id, 1, lease_s=0)
    fresh = claimed(ledger, query_id, 1)
    with pytest.raises(DeliverySupersededError):
        ledger.begin_request(
            stale,
            try_number=2,
            model="m",
            input_price=Decimal(1),
            output_price=Decimal(1),
            lease_s=10,
        )
    assert (
        ledger.begin_request(
            fresh,
            try_number=1,
            model="m",
            input_price=Decimal(1),
            output_price=Decimal(1),
            lease_s=10,
        )
        > 0
    )


def test_claim_of_a_missing_hop(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    assert claim(ledger, query_id, 2).state == "missing"
    assert claim(ledger, uuid.uuid4(), 1).state == "missing"


def test_next_hop_is_inserted_once(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    route = claimed(ledger, query_id, 1)
    call = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed: first")
    assert ledger.finish_hop(route, status=HopStatus.DONE, result=HopResult(), next_hop=call)

    # A later delivery of the same hop (put back in play by hand) takes the same step again.
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE hops SET status = 'queued' WHERE query_id = :q AND seq = 1"),
            {"q": query_id},
        )
    again = claimed(ledger, query_id, 1)
    assert again.delivery == 2
    other = NextHop(query_id, 2, HopKind.CALL, "mid", "sim-medium", reason="routed: second")
    assert ledger.finish_hop(again, status=HopStatus.DONE, result=HopResult(), next_hop=other)
    ledger.fail_exhausted(again, None, other)

    hops = hop_rows(ledger, query_id)
    assert [(h.seq, h.kind) for h in hops] == [(1, "route"), (2, "call")]
    assert (hops[1].tier, hops[1].reason, hops[1].status) == ("cheap", "routed: first", "queued")


# -- money -----------------------------------------------------------------------------------------


def test_record_request_adds_cost_to_hop_and_query_exactly(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    hop = route_to_cheap(ledger, query_id)
    prices = {"input_price": Decimal("0.15"), "output_price": Decimal("0.60")}

    record_request(
        ledger,
        hop,
        try_number=1,
        model="sim-small",
        outcome="error",
        latency_ms=3,
        http_status=500,
        error="HTTP 500",
        **prices,
    )
    costs = [Decimal("0.0000001234"), Decimal("0.0000000001"), Decimal("0.1000000000")]
    for try_number, cost in enumerate(costs, start=2):
        record_request(
            ledger,
            hop,
            try_number=try_number,
            model="sim-small",
            outcome="ok",
            latency_ms=5,
            cost=cost,
            input_tokens=10,
            output_tokens=20,
            **prices,
        )

    expected = Decimal("0.1000001235")
    [_, call] = hop_rows(ledger, query_id)
    assert call.cost == expected
    assert query_row(ledger, query_id).total_cost == expected
    requests = rows(
        ledger, "SELECT * FROM provider_requests WHERE hop_id = :h ORDER BY id", h=hop.id
    )
    assert [r.try_number for r in requests] == [1, 2, 3, 4]
    error = requests[0]
    assert (error.outcome, error.cost, error.http_status, error.error) == (
        "error",
        Decimal(0),
        500,
        "HTTP 500",
    )
    assert error.delivery == hop.delivery == 1
    assert sum((r.cost for r in requests), Decimal(0)) == expected


def test_record_request_of_a_stale_delivery_still_counts(ledger: Ledger) -> None:
    """Money spent is spent: spend is recorded outside the fence."""
    query_id = submit_one(ledger)
    stale = route_to_cheap(ledger, query_id, lease_s=0)
    claimed(ledger, query_id, 2)
    record_request(
        ledger,
        stale,
        try_number=1,
        model="sim-small",
        outcome="ok",
        latency_ms=1,
        input_price=Decimal(1),
        output_price=Decimal(1),
        cost=Decimal("0.25"),
    )
    assert query_row(ledger, query_id).total_cost == Decimal("0.25")


def test_a_successful_request_finished_with_its_hop_counts_even_when_the_fence_fails(
    ledger: Ledger,
) -> None:
    """The last attempt's completion rides in the hop's finish (one transaction); a stale
    delivery's finish writes nothing of the hop, but its spend is still committed."""
    query_id = submit_one(ledger)
    stale = route_to_cheap(ledger, query_id, lease_s=0)
    request_id = ledger.begin_request(
        stale, try_number=1, model="sim-small", input_price=Decimal(1), output_price=Decimal(1)
    )
    fresh = claimed(ledger, query_id, 2)
    done = RequestDone(stale, request_id, "ok", latency_ms=3, cost=Decimal("0.125"))
    assert not ledger.finish_hop(
        stale, status=HopStatus.DONE, result=HopResult(reason="stale"), requests_done=[done]
    )
    [request] = rows(ledger, "SELECT * FROM provider_requests WHERE id = :r", r=request_id)
    # the fresh claim marked it unknown; the late completion says what really happened
    assert request.outcome == "ok" and request.cost == Decimal("0.125")
    assert query_row(ledger, query_id).total_cost == Decimal("0.125")
    assert hop_rows(ledger, query_id)[1].reason == "routed: test"  # not "stale"

    again = ledger.begin_request(
        fresh, try_number=1, model="sim-small", input_price=Decimal(1), output_price=Decimal(1)
    )
    done = RequestDone(fresh, again, "ok", latency_ms=2, cost=Decimal("0.25"))
    assert ledger.finish_hop(
        fresh, status=HopStatus.DONE, result=HopResult(reason="fresh"), requests_done=[done]
    )
    assert query_row(ledger, query_id).total_cost == Decimal("0.375")
    assert hop_rows(ledger, query_id)[1].cost == Decimal("0.375")


def test_the_cost_of_a_request_whose_row_was_lost_is_not_added(ledger: Ledger) -> None:
    """A pending request row is committed asynchronously; a database crash can lose it. Its
    completion then finds no row, and adds its cost nowhere: the sums stay exact."""
    query_id = submit_one(ledger)
    hop = route_to_cheap(ledger, query_id)
    lost = RequestDone(hop, 10**12, "ok", latency_ms=1, cost=Decimal("0.5"))
    ledger.finish_requests([lost])
    assert query_row(ledger, query_id).total_cost == 0
    assert ledger.finish_hop(
        hop, status=HopStatus.DONE, result=HopResult(reason="answered"), requests_done=[lost]
    )
    assert query_row(ledger, query_id).total_cost == 0
    assert (
        hop_rows(ledger, query_id)[1].cost == 0 and hop_rows(ledger, query_id)[1].status == "done"
    )


def test_a_request_completed_twice_counts_once(ledger: Ledger) -> None:
    """A completion retried after a commit whose reply was lost must not add its cost again."""
    query_id = submit_one(ledger)
    hop = route_to_cheap(ledger, query_id)
    request_id = ledger.begin_request(
        hop, try_number=1, model="sim-small", input_price=Decimal(1), output_price=Decimal(1)
    )
    done = RequestDone(hop, request_id, "ok", latency_ms=1, cost=Decimal("0.25"))
    ledger.finish_requests([done])
    ledger.finish_requests([done])
    assert ledger.finish_hop(
        hop, status=HopStatus.DONE, result=HopResult(reason="answered"), requests_done=[done]
    )
    assert query_row(ledger, query_id).total_cost == Decimal("0.25")
    assert hop_rows(ledger, query_id)[1].cost == Decimal("0.25")


def test_the_claim_reads_the_query_and_a_judge_hop_its_answer(ledger: Ledger) -> None:
    query_id = submit_one(ledger, "Name a prime.", metadata={"tag": "maths"}, user="ada")
    first = claim(ledger, query_id, 1)
    assert first.query is not None and first.answer is None
    assert (first.query.text, first.query.user, first.query.metadata) == (
        "Name a prime.",
        "ada",
        {"tag": "maths"},
    )
    assert first.query.status == "running" == query_row(ledger, query_id).status
    call = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed")
    assert first.hop is not None
    ledger.finish_hop(first.hop, status=HopStatus.DONE, result=HopResult(), next_hop=call)
    second = claimed(ledger, query_id, 2)
    judge = NextHop(query_id, 3, HopKind.JUDGE, "cheap", None, reason="judge")
    usage = Usage("seven", "stop", 7, 1, False, 5)
    ledger.finish_hop(second, status=HopStatus.DONE, result=HopResult(usage=usage), next_hop=judge)
    third = ledger.claim(query_id, 3, lease_s=LEASE, max_deliveries=3, with_answer=True)
    assert third.answer is not None
    assert (third.answer.seq, third.answer.tier, third.answer.output) == (2, "cheap", "seven")


# -- closing the query -----------------------------------------------------------------------------


def test_done_outcome_copies_the_answer_and_is_final(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    call = route_to_cheap(ledger, query_id)

    done = QueryOutcome(QueryStatus.DONE, "judging is off: answer accepted", answer_seq=2)
    assert ledger.finish_hop(
        call,
        status=HopStatus.DONE,
        result=HopResult(usage=Usage("4", "stop", 0, 0, False, 1)),
        outcome=done,
    )

    query = query_row(ledger, query_id)
    assert query.status == "done" and query.finished_at is not None
    assert (query.final_answer, query.final_tier, query.final_model) == ("4", "cheap", "sim-small")
    assert query.final_reason == "judging is off: answer accepted"
    view = ledger.view(query_id)
    assert view.finished and view.answer == "4" and [h.seq for h in view.hops] == [1, 2]

    # A second outcome (a late step, or an exhausted hop) never overwrites a finished query.
    ledger.fail_exhausted(call, QueryOutcome(QueryStatus.FAILED, "too late"), None)
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE hops SET status = 'queued' WHERE query_id = :q AND seq = 2"),
            {"q": query_id},
        )
    again = claimed(ledger, query_id, 2)
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE hops SET output = 'five' WHERE id = :h"),
            {"h": again.id},
        )
    assert ledger.finish_hop(
        again,
        status=HopStatus.DONE,
        result=HopResult(),
        outcome=QueryOutcome(QueryStatus.DONE, "second answer", answer_seq=2),
    )
    query = query_row(ledger, query_id)
    assert (query.status, query.final_answer, query.final_reason) == (
        "done",
        "4",
        "judging is off: answer accepted",
    )
