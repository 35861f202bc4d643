"""Publishing hops to their queues, by task name. Called only after the ledger commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery

from routeq.config import Settings
from routeq.ledger import HopKind, NextHop
from routeq.queue.app import (
    CALL_TASK,
    COMBINE_TASK,
    JUDGE_QUEUE,
    JUDGE_TASK,
    ROUTE_MANY_TASK,
    ROUTE_QUEUE,
    ROUTE_TASK,
)

TIER_HEADER = "routeq_tier"  # a call message's tier, read by the call task
# On a hop published again for a delivery that was lost (the reconciler's): its step counts
# its claim at once instead of holding it open (``ledger.held``).
REPUBLISHED_HEADER = "routeq_republished"
# Route hops per message of a bulk submission: large enough that publishing is a small part of
# submitting, small enough that a chunk is routed in well under a second by one worker while
# the other workers route the other chunks.
ROUTE_CHUNK = 50


class Publisher:
    def __init__(self, app: Celery, settings: Settings) -> None:
        self._app = app
        self._settings = settings

    def publish_routes(self, query_ids: Sequence[uuid.UUID], *, republished: bool = False) -> None:
        """Publish the route hops of many queries (a bulk submission's), ``ROUTE_CHUNK`` ids
        per message: publishing costs the producer far more per message than the database
        costs per row, and a route step is short. A single query gets a plain route message.
        ``republished``: the messages replace lost ones (their claims are counted at once)."""
        if len(query_ids) == 1:
            self.publish(NextHop(query_ids[0], 1, HopKind.ROUTE), republished=republished)
            return
        headers = {REPUBLISHED_HEADER: True} if republished else None
        with self._app.producer_or_acquire() as producer:
            for start in range(0, len(query_ids), ROUTE_CHUNK):
                chunk = [str(query_id) for query_id in query_ids[start : start + ROUTE_CHUNK]]
                self._app.send_task(
                    ROUTE_MANY_TASK,
                    args=[chunk],
                    queue=ROUTE_QUEUE,
                    routing_key=ROUTE_QUEUE,
                    producer=producer,
                    headers=headers,
                )

    def publish(
        self,
        hop: NextHop,
        *,
        countdown: float | None = None,
        producer: Any = None,
        republished: bool = False,
    ) -> None:
        """Send ``(query_id, seq)`` to the hop's queue. Nothing else enters the broker (but the
        ids of many route hops at once: ``publish_routes``).

        A shadow's hop carries ``shadow.priority``. On Redis, kombu keeps one list per priority
        step and a worker empties the lower-numbered lists first, so with the default (9) a
        tier's workers answer users before they answer shadows."""
        args = [str(hop.query_id), hop.seq]
        headers: dict[str, Any] | None = None
        if hop.kind is HopKind.ROUTE:
            name, queue = ROUTE_TASK, ROUTE_QUEUE
        elif hop.kind is HopKind.JUDGE:
            name, queue = JUDGE_TASK, JUDGE_QUEUE
        elif hop.kind is HopKind.COMBINE:
            name, queue = COMBINE_TASK, ROUTE_QUEUE
        else:
            assert hop.tier is not None, "a call hop always has a tier"
            name, queue = CALL_TASK, self._settings.tier(hop.tier).queue
            # The tier's name (config, not data), so the step reads nothing before its claim.
            # A header, not an argument: a worker that does not know it ignores it.
            headers = {TIER_HEADER: hop.tier}
        if republished:
            headers = {**(headers or {}), REPUBLISHED_HEADER: True}
        priority = self._settings.shadow.priority if hop.background else None
        self._app.send_task(
            name,
            args=args,
            queue=queue,
            routing_key=queue,
            countdown=countdown,
            priority=priority,
            producer=producer,
            headers=headers,
        )
