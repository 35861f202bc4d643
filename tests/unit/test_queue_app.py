"""The producer-side Celery app's broker options that decide how fast dead workers' messages
come back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from routeq.config import Settings, WorkerConfig
from routeq.queue.app import create_app, sweep_lock_expiry
from routeq.queue.publisher import ROUTE_CHUNK, Publisher
from routeq.records import HopKind, NextHop


def test_a_dead_sweepers_lock_does_not_hold_back_redelivery_for_minutes() -> None:
    # Given the default limits
    settings = Settings()
    # When the app is configured
    options = create_app(settings, "redis://127.0.0.1:6379/0").conf.broker_transport_options
    # Then a sweeper killed mid-sweep blocks the others for two sweeps (seconds), not for
    # kombu's five minutes, and well within the visibility timeout
    assert options["visibility_timeout"] == settings.time_limits.visibility_s
    assert options["unacked_mutex_expire"] == 2 * options["unacked_restore_interval"]
    assert options["unacked_mutex_expire"] <= 20 < options["visibility_timeout"]


@pytest.mark.parametrize(("visibility", "expiry"), [(1, 5), (16, 6), (50, 20), (3600, 20)])
def test_the_sweep_lock_expiry_follows_the_sweep_interval(visibility: int, expiry: int) -> None:
    assert sweep_lock_expiry(visibility) == expiry


def test_task_events_are_off_unless_asked_for() -> None:
    # Given the default settings, and settings that ask for task events
    quiet = create_app(Settings(), "redis://127.0.0.1:6379/0").conf
    loud = create_app(
        Settings(worker=WorkerConfig(task_events=True)), "redis://127.0.0.1:6379/0"
    ).conf
    # Then events (about four Redis publishes per hop) are sent only when asked for; Flower
    # turns them on in the workers it watches by itself
    assert not quiet.worker_send_task_events and not quiet.task_send_sent_event
    assert loud.worker_send_task_events and loud.task_send_sent_event


class _RecordingApp:
    """Stands in for Celery at the publisher's edge: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.producers = 0

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append({"name": name, **options})

    @contextmanager
    def producer_or_acquire(self) -> Iterator[str]:
        self.producers += 1
        yield f"producer-{self.producers}"


def test_a_call_message_names_its_tier_and_bulk_routes_go_many_to_a_message() -> None:
    # Given a publisher on the default ladder
    settings = Settings()
    app = _RecordingApp()
    publisher = Publisher(app, settings)  # type: ignore[arg-type]
    query_id = uuid.uuid4()
    tier = settings.tiers[0]
    # When a call hop is published, and then the route hops of a bulk submission
    publisher.publish(NextHop(query_id, 2, HopKind.CALL, tier.name, tier.model))
    bulk = [uuid.uuid4() for _ in range(2 * ROUTE_CHUNK + 3)]
    publisher.publish_routes(bulk)
    # Then the call's message holds ids, and its tier's name in a header (no text), on the
    # tier's queue
    call = app.sent[0]
    assert call["args"] == [str(query_id), 2] and call["queue"] == tier.queue
    assert call["headers"] == {"routeq_tier": tier.name}
    # and the route hops went out in three messages of ids, in order, on one producer
    routes = app.sent[1:]
    assert [m["name"] for m in routes] == ["routeq.route_many"] * 3
    assert [len(m["args"][0]) for m in routes] == [ROUTE_CHUNK, ROUTE_CHUNK, 3]
    assert [i for m in routes for i in m["args"][0]] == [str(q) for q in bulk]
    assert all(m["queue"] == "route" and m["headers"] is None for m in routes)
    assert {m["producer"] for m in routes} == {"producer-1"} and app.producers == 1


def test_a_bulk_of_one_is_a_plain_route_message() -> None:
    app = _RecordingApp()
    query_id = uuid.uuid4()
    Publisher(app, Settings()).publish_routes([query_id])  # type: ignore[arg-type]
    assert [(m["name"], m["args"]) for m in app.sent] == [("routeq.route", [str(query_id), 1])]


def test_a_republished_hop_is_marked_so_its_claim_is_counted_at_once() -> None:
    settings = Settings()
    app = _RecordingApp()
    publisher = Publisher(app, settings)  # type: ignore[arg-type]
    tier = settings.tiers[0]
    publisher.publish(NextHop(uuid.uuid4(), 1, HopKind.ROUTE), republished=True)
    publisher.publish(
        NextHop(uuid.uuid4(), 2, HopKind.CALL, tier.name, tier.model), republished=True
    )
    assert app.sent[0]["headers"] == {"routeq_republished": True}
    assert app.sent[1]["headers"] == {"routeq_tier": tier.name, "routeq_republished": True}
