"""A claim held open until the step's next write (``ledger.held``): one transaction for a step
that claims and finishes, and nothing left behind when the delivery holding it dies."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from routeq.ledger import Ledger
from routeq.records import ClaimedHop, HopKind, HopResult, HopStatus, NewQuery, NextHop

pytestmark = pytest.mark.integration

LEASE = 600.0


@pytest.fixture
def guarded(ledger: Ledger) -> Iterator[Ledger]:
    """The same ledger, on an engine whose statements give up on a lock after 5 s: a write
    waiting for a lock its own thread holds fails the test instead of hanging it."""
    engine = sa.create_engine(
        ledger.engine.url, connect_args={"options": "-c lock_timeout=5000"}, pool_size=1
    )
    yield Ledger(engine)
    engine.dispose()


def submit_one(ledger: Ledger) -> uuid.UUID:
    [entry] = ledger.submit([NewQuery(text="What is 2 + 2?", input_tokens=7)])
    return entry.query_id


def hold(ledger: Ledger, query_id: uuid.UUID, seq: int = 1, lease_s: float = LEASE) -> ClaimedHop:
    claim = ledger.claim(query_id, seq, lease_s=lease_s, max_deliveries=3, hold=True)
    assert claim.state == "claimed" and claim.hop is not None and claim.query is not None
    return claim.hop


def hop_row(ledger: Ledger, query_id: uuid.UUID, seq: int = 1) -> Any:
    """As another connection sees it: what has been committed."""
    with ledger.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status, attempts FROM hops WHERE query_id = :q AND seq = :s"),
            {"q": query_id, "s": seq},
        ).one()


def test_a_held_claim_is_committed_by_the_finish_alone(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    hop = hold(ledger, query_id)
    # Nothing is committed yet: the claim waits for the step's write.
    assert tuple(hop_row(ledger, query_id)) == ("queued", 0)

    call = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed: test")
    assert ledger.finish_hop(
        hop, status=HopStatus.DONE, result=HopResult(tier="cheap"), next_hop=call
    )

    assert tuple(hop_row(ledger, query_id)) == ("done", 1)
    assert tuple(hop_row(ledger, query_id, 2)) == ("queued", 0)


def test_a_held_hop_is_stamped_with_when_its_step_finished_not_when_it_was_claimed(
    ledger: Ledger,
) -> None:
    query_id = submit_one(ledger)
    hop = hold(ledger, query_id)
    time.sleep(0.05)  # the step's work
    ledger.finish_hop(hop, status=HopStatus.DONE, result=HopResult(tier="cheap"))
    with ledger.engine.connect() as conn:
        took = conn.execute(
            sa.text(
                "SELECT extract(epoch FROM finished_at - started_at) FROM hops "
                "WHERE query_id = :q AND seq = 1"
            ),
            {"q": query_id},
        ).scalar_one()
    assert float(took) >= 0.05


def test_a_held_call_claim_commits_with_its_first_provider_request(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    route = ledger.claim(query_id, 1, lease_s=LEASE, max_deliveries=3).hop
    assert route is not None
    call = NextHop(query_id, 2, HopKind.CALL, "cheap", "sim-small", reason="routed: test")
    ledger.finish_hop(route, status=HopStatus.DONE, result=HopResult(tier="cheap"), next_hop=call)
    hop = hold(ledger, query_id, 2)

    request_id = ledger.begin_request(
        hop,
        try_number=1,
        model="sim-small",
        input_price=Decimal("0.1"),
        output_price=Decimal("0.2"),
        lease_s=60,
    )

    # The request must be on the ledger before it is sent, and the claim with it.
    assert tuple(hop_row(ledger, query_id, 2)) == ("running", 1)
    with ledger.engine.connect() as conn:
        outcome = conn.execute(
            sa.text("SELECT outcome FROM provider_requests WHERE id = :id"), {"id": request_id}
        ).scalar_one()
    assert outcome == "pending"


def test_any_other_write_commits_the_held_claim_first(guarded: Ledger) -> None:
    query_id = submit_one(guarded)
    hop = hold(guarded, query_id)

    # A write on another connection of the same thread must not wait on the held row.
    assert guarded.renew(hop, 60)

    assert tuple(hop_row(guarded, query_id)) == ("running", 1)


def test_a_released_held_claim_still_counts_its_delivery(ledger: Ledger) -> None:
    # Given a step that failed while holding its claim
    query_id = submit_one(ledger)
    hop = hold(ledger, query_id)

    # When the task hands the hop back
    assert ledger.release(hop)

    # Then the delivery was counted, as a committed claim's would be
    assert tuple(hop_row(ledger, query_id)) == ("queued", 1)
    again = ledger.claim(query_id, 1, lease_s=LEASE, max_deliveries=3)
    assert again.hop is not None and again.hop.delivery == 2


def test_a_held_claim_whose_worker_vanished_ends_with_its_lease(ledger: Ledger) -> None:
    # Given a worker that claimed with a one-second lease and then stopped answering, its
    # connection left open (a host gone from the network closes nothing)
    query_id = submit_one(ledger)
    hold(ledger, query_id, lease_s=1.0)

    # When the lease has run out, Postgres has ended the idle transaction and its row lock:
    # another delivery claims the hop as its first, without waiting on the vanished one
    time.sleep(1.6)
    other = Ledger(ledger.engine)
    claim = other.claim(query_id, 1, lease_s=LEASE, max_deliveries=3)
    assert claim.state == "claimed" and claim.hop is not None and claim.hop.delivery == 1

    # and the vanished delivery can no longer commit anything
    with pytest.raises(sa.exc.DBAPIError):
        ledger.commit_held_claim()


def test_a_held_claim_that_dies_with_its_connection_leaves_the_hop_claimable(
    ledger: Ledger,
) -> None:
    query_id = submit_one(ledger)
    hold(ledger, query_id)
    # The worker process dies: Postgres sees its connection close and rolls the claim back.
    with ledger.engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'idle in transaction' "
                "AND query LIKE 'WITH claimed AS%'"
            )
        ).scalars()
        assert list(killed) == [True]

    assert tuple(hop_row(ledger, query_id)) == ("queued", 0)
    with pytest.raises(sa.exc.DBAPIError):
        ledger.commit_held_claim()
    # and the ledger goes on working on a fresh connection
    claim = ledger.claim(query_id, 1, lease_s=LEASE, max_deliveries=3)
    assert claim.hop is not None and claim.hop.delivery == 1


def test_a_claim_held_by_one_thread_is_left_alone_by_another(ledger: Ledger) -> None:
    # Given a ledger shared by two threads, one of which holds a claim
    query_id = submit_one(ledger)
    hop = hold(ledger, query_id)
    # When the other thread writes
    other = threading.Thread(target=submit_one, args=(ledger,))
    other.start()
    other.join()
    # Then the held claim is still the holder's to commit
    assert tuple(hop_row(ledger, query_id)) == ("queued", 0)
    assert ledger.finish_hop(hop, status=HopStatus.DONE, result=HopResult(tier="cheap"))
    assert tuple(hop_row(ledger, query_id)) == ("done", 1)


def test_closing_the_ledger_rolls_a_held_claim_back(ledger: Ledger) -> None:
    query_id = submit_one(ledger)
    hold(ledger, query_id)
    ledger.close()
    assert tuple(hop_row(ledger, query_id)) == ("queued", 0)
