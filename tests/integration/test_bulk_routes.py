"""A bulk submission's route hops travel many to a message (``Publisher.publish_routes``): the
reconciler sees each of them, and a query that fails its route does not hold up the others."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from ledger_helpers import insert_deep_metadata_query
from stack import FAST_RETRY, running_stack, sim_config

from routeq import Client
from routeq.config import WorkerConfig
from routeq.ledger import Ledger, NewQuery
from routeq.queue.app import create_app, queue_names
from routeq.queue.publisher import ROUTE_CHUNK, Publisher
from routeq.worker.reconcile import hops_with_messages

pytestmark = pytest.mark.integration

FINAL = ("done", "failed")


def test_route_hops_in_bulk_messages_are_seen_by_the_reconciler(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: Ledger
) -> None:
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        submitted = ledger.submit(
            [NewQuery(text=f"q{i}", input_tokens=2) for i in range(ROUTE_CHUNK + 7)]
        )
        ids = [entry.query_id for entry in submitted]
        app = create_app(stack.settings, broker_url)
        Publisher(app, stack.settings).publish_routes(ids)
        found, scanned = hops_with_messages(
            redis.Redis.from_url(broker_url), queue_names(stack.settings)
        )
    assert scanned == 2  # two messages: a full chunk and the rest
    assert {(query_id, 1) for query_id in ids} <= found


def test_a_query_that_fails_its_route_does_not_hold_up_its_chunk(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: Ledger
) -> None:
    # Given a bulk route message with a poison query in the middle of it
    worker = WorkerConfig(reconcile_interval_s=60)
    retry = FAST_RETRY.model_copy(update={"max_deliveries": 2})
    with running_stack(
        tmp_path, migrated_url, broker_url, sim_config(), worker=worker, retry=retry
    ) as (
        stack,
        _,
    ):
        good = [
            entry.query_id
            for entry in ledger.submit(
                [NewQuery(text=f"What is {i} plus {i}?", input_tokens=8) for i in range(20)]
            )
        ]
        poison = insert_deep_metadata_query(migrated_url, depth=960)
        app = create_app(stack.settings, broker_url)
        Publisher(app, stack.settings).publish_routes([*good[:10], poison, *good[10:]])
        # When a worker routes it
        stack.start_worker("--concurrency", "2")
        with Client(stack.settings) as client:
            deadline = time.monotonic() + 120
            while any(client.status(q).status not in FINAL for q in [*good, poison]):
                assert time.monotonic() < deadline, "queries of the chunk were never closed"
                time.sleep(0.2)
            results = [client.status(query_id) for query_id in good]
            stuck = client.status(poison)
    # Then every other query of the chunk was answered
    assert all(result.status == "done" for result in results), [r.reason for r in results]
    # and the poison one went on alone until the delivery cap closed it
    assert stuck.status == "failed" and "deliver" in (stuck.reason or ""), stuck


def test_a_chunk_delivered_again_goes_on_one_query_per_message(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: Ledger
) -> None:
    # Given a bulk route message that is not a first delivery (here: republished)
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        ids = [
            entry.query_id
            for entry in ledger.submit(
                [NewQuery(text=f"What is {i} times {i}?", input_tokens=8) for i in range(12)]
            )
        ]
        app = create_app(stack.settings, broker_url)
        Publisher(app, stack.settings).publish_routes(ids, republished=True)
        # When a worker takes it
        stack.start_worker("--concurrency", "2")
        with Client(stack.settings) as client:
            deadline = time.monotonic() + 120
            while any(client.status(q).status not in FINAL for q in ids):
                assert time.monotonic() < deadline, "queries of the chunk were never closed"
                time.sleep(0.2)
            results = [client.status(query_id) for query_id in ids]
    # Then every query was answered, each routed by one delivery of its own message
    assert all(result.status == "done" for result in results), [r.reason for r in results]
    with ledger.engine.connect() as conn:
        attempts = conn.execute(
            sa.text("SELECT attempts FROM hops WHERE seq = 1 AND query_id = ANY(:ids)"),
            {"ids": ids},
        ).scalars()
        assert sorted(attempts) == [1] * len(ids)
