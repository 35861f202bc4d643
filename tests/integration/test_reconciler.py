"""The reconciler on real Postgres and Redis, run in-process: what it publishes, settles and
marks, and what it leaves alone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from stack import judge, ladder

from routeq.config import Settings, WorkerConfig
from routeq.ledger import HopKind, HopStatus, Ledger, NewQuery, NextHop
from routeq.queue.app import create_app, queue_names
from routeq.records import QueryRole
from routeq.worker.reconcile import hops_with_messages, reconcile
from routeq.worker.runtime import Runtime, build_runtime
from routeq.worker.steps import after_exhausted

pytestmark = pytest.mark.integration

SIM_URL = "http://127.0.0.1:9/v1"  # nothing is called


@pytest.fixture
def runtime(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: Ledger
) -> Iterator[Runtime]:
    settings = Settings(
        tiers=ladder(SIM_URL),
        judge=judge(SIM_URL),
        worker=WorkerConfig(reconcile_grace_s=0, step_lease_s=5),
        state_dir=tmp_path,
        database_url=migrated_url,
        broker_url=broker_url,
    )
    rt = build_runtime(settings, migrated_url, create_app(settings, broker_url))
    yield rt
    rt.ledger.engine.dispose()


def submit(ledger: Ledger, text: str = "What is 2 + 2?") -> uuid.UUID:
    return ledger.submit([NewQuery(text=text, input_tokens=8)])[0].query_id


def messages(rt: Runtime) -> set[tuple[uuid.UUID, int]]:
    found, _ = hops_with_messages(rt.broker, queue_names(rt.settings))
    return found


def sql(rt: Runtime, statements: str, **params: object) -> None:
    with rt.ledger.engine.begin() as conn:
        for statement in statements.split("; "):
            conn.execute(sa.text(statement), params)


def test_a_hop_whose_message_was_lost_is_published_once(runtime: Runtime) -> None:
    # Given a queued route hop with no message (a publish lost after the commit)
    query_id = submit(runtime.ledger)
    # When the reconciler runs twice
    first = reconcile(runtime)
    second = reconcile(runtime)
    # Then the hop was published by the first run only: the second saw its message in Redis
    assert [(h.query_id, h.seq) for h in first.republished] == [(query_id, 1)]
    assert second.republished == []
    assert (query_id, 1) in messages(runtime)


def test_a_hop_with_its_message_in_redis_is_left_alone(runtime: Runtime) -> None:
    query_id = submit(runtime.ledger)
    runtime.publisher.publish(NextHop(query_id, 1, HopKind.ROUTE))
    assert reconcile(runtime).republished == []


def test_a_running_hop_past_its_lease_is_published_and_its_pending_call_marked_unknown(
    runtime: Runtime,
) -> None:
    # Given a hop claimed by a worker that died mid-call: its request is pending, lease expired
    query_id = submit(runtime.ledger)
    claim = runtime.ledger.claim(query_id, 1, lease_s=60, max_deliveries=3, worker="dead@host")
    assert claim.hop is not None
    runtime.ledger.begin_request(
        claim.hop,
        try_number=1,
        model="m",
        input_price=1,
        output_price=1,
        max_cost=1,  # type: ignore[arg-type]
    )
    runtime.publisher.publish(NextHop(query_id, 1, HopKind.ROUTE))  # its message still exists
    sql(runtime, "UPDATE hops SET lease_expires_at = now() - interval '1 second'")
    # When the reconciler runs
    report = reconcile(runtime)
    # Then the hop is published again, and the request that may have been paid is 'unknown'
    assert [(h.query_id, h.seq) for h in report.republished] == [(query_id, 1)]
    assert report.unknown_requests == 1
    with runtime.ledger.engine.connect() as conn:
        outcome, max_cost = conn.execute(
            sa.text("SELECT outcome, max_cost FROM provider_requests")
        ).one()
    assert outcome == "unknown" and max_cost == 1


def test_a_running_hop_within_its_lease_and_with_its_message_is_left_alone(
    runtime: Runtime,
) -> None:
    query_id = submit(runtime.ledger)
    runtime.ledger.claim(query_id, 1, lease_s=60, max_deliveries=3, worker="alive@host")
    runtime.publisher.publish(NextHop(query_id, 1, HopKind.ROUTE))
    sql(runtime, "UPDATE hops SET started_at = now() - interval '1 minute'")
    report = reconcile(runtime)
    assert report.republished == [] and report.unknown_requests == 0


def test_an_orphan_query_is_moved_on_as_if_its_hop_had_just_failed(runtime: Runtime) -> None:
    # Given a call hop marked failed (exhausted) whose query was never moved on
    query_id = submit(runtime.ledger)
    sql(
        runtime,
        "UPDATE hops SET status = 'done' WHERE query_id = :q; "
        "INSERT INTO hops (query_id, seq, kind, tier, model, status, attempts, error) "
        "VALUES (:q, 2, 'call', 'cheap', 'sim-small', 'failed', 3, 'gave up after 3 deliveries')",
        q=query_id,
    )
    # When the reconciler runs
    report = reconcile(runtime)
    # Then the query escalates to the next tier, and the new hop is published
    assert report.settled == 1
    assert [(h.seq, h.tier) for h in report.republished + _published_calls(runtime)] == [(3, "mid")]
    view = runtime.ledger.view(query_id)
    assert [h.status for h in view.hops] == ["done", "failed", "queued"]


def _published_calls(runtime: Runtime) -> list[NextHop]:
    found = messages(runtime)
    return [
        NextHop(q, s, HopKind.CALL, "mid")
        for q, s in found
        if runtime.ledger.hop_tier(q, s) == "mid"
    ]


def test_a_poison_query_that_crashes_moving_on_is_closed_with_the_reason(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a hop past its cap whose query cannot be read (the RecursionError of deep metadata)
    query_id = submit(runtime.ledger)
    claim = runtime.ledger.claim(query_id, 1, lease_s=60, max_deliveries=3)
    assert claim.hop is not None

    def crash(_: uuid.UUID) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(runtime.ledger, "query_input", crash)
    # When the step moves it on after the delivery cap
    result = after_exhausted(runtime, claim.hop)
    # Then the query is failed with both reasons, not left running
    view = runtime.ledger.view(query_id)
    assert view.status == "failed", view
    assert "gave up after 3 deliveries" in (view.final_reason or "")
    assert "RecursionError" in (view.final_reason or "")
    assert result.publish == []


def test_only_one_run_at_a_time(runtime: Runtime) -> None:
    submit(runtime.ledger)
    entered, release = threading.Event(), threading.Event()
    reports = []

    def hold() -> None:
        with runtime.ledger.reconciler_lock() as locked:
            assert locked
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(10)
    reports.append(reconcile(runtime))
    release.set()
    holder.join()
    reports.append(reconcile(runtime))
    assert reports[0].locked is False and reports[0].republished == []
    assert reports[1].locked is True and len(reports[1].republished) == 1


def test_a_combine_hop_waiting_for_live_pieces_is_not_published(runtime: Runtime) -> None:
    parent = submit(runtime.ledger, "a long document")
    sql(
        runtime,
        "UPDATE hops SET status = 'done' WHERE query_id = :q; "
        "INSERT INTO hops (query_id, seq, kind, status) VALUES (:q, 2, 'combine', 'queued'); "
        "UPDATE queries SET status = 'running' WHERE id = :q",
        q=parent,
    )
    piece = runtime.ledger.submit([NewQuery(text="part", input_tokens=2, parent_id=parent)])[
        0
    ].query_id
    runtime.publisher.publish(NextHop(piece, 1, HopKind.ROUTE))
    report = reconcile(runtime)
    assert report.republished == [] and report.settled == 0


def test_redis_unreachable_still_acts_on_expired_leases(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    query_id = submit(runtime.ledger)
    other = submit(runtime.ledger)
    runtime.ledger.claim(query_id, 1, lease_s=60, max_deliveries=3)
    sql(
        runtime,
        "UPDATE hops SET lease_expires_at = now() - interval '1 second' WHERE query_id = :q",
        q=query_id,
    )

    def down(*_: object) -> None:
        raise redis.ConnectionError("down")

    monkeypatch.setattr("routeq.worker.reconcile.hops_with_messages", down)
    published: list[NextHop] = []

    def publish(hop: NextHop, *, republished: bool = False) -> None:
        assert republished  # marked, so that its step counts its claim at once
        published.append(hop)

    monkeypatch.setattr(runtime.publisher, "publish", publish)
    report = reconcile(runtime)
    assert [(h.query_id, h.seq) for h in report.republished] == [(query_id, 1)]
    assert report.scanned_messages is None
    assert (other, 1) not in [(h.query_id, h.seq) for h in published]
    assert runtime.ledger.view(query_id).hops[0].status == HopStatus.RUNNING.value


def test_each_run_folds_the_metrics_deltas_so_they_stay_small_without_a_scraper(
    runtime: Runtime,
) -> None:
    # (a query closing writes deltas; a queued one is a live gauge, counted at the scrape)
    for _ in range(3):
        runtime.ledger.fail_query(submit(runtime.ledger), "given up")
    engine = runtime.ledger.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM metrics.deltas")).scalar_one()
    assert before > 0  # the closes wrote deltas

    reconcile(runtime)

    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT count(*) FROM metrics.deltas")).scalar_one()
        failed = conn.execute(
            sa.text(
                "SELECT coalesce(sum(value), 0) FROM metrics.totals "
                "WHERE name = 'queries' AND labels = '{failed}'"
            )
        ).scalar_one()
    assert after == 0
    assert failed >= 3


def test_a_lost_shadow_hop_is_published_again_at_the_shadow_priority(runtime: Runtime) -> None:
    # Given a shadow whose route hop's message was lost
    original = submit(runtime.ledger)
    [shadow] = runtime.ledger.submit(
        [NewQuery("What is 2 + 2?", 8, role=QueryRole.SHADOW, shadow_of=original)]
    )
    # When the reconciler publishes both route hops again
    republished = {(h.query_id, h.background) for h in reconcile(runtime).republished}
    # Then the shadow's goes to the route queue's lowest-priority list, behind users' hops
    assert republished == {(original, False), (shadow.query_id, True)}
    client = redis.Redis.from_url(runtime.settings.broker_url or "")
    assert client.llen("route") == 1 and client.llen("route\x06\x169") == 1
    assert messages(runtime) >= {(original, 1), (shadow.query_id, 1)}
