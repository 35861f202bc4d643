"""Publishing hops to their queues, by task name. Called only after the ledger commit."""

from __future__ import annotations

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
    ROUTE_QUEUE,
    ROUTE_TASK,
)

TIER_HEADER = "routeq_tier"  # a call message's tier, read by the call task


class Publisher:
    def __init__(self, app: Celery, settings: Settings) -> None:
        self._app = app
        self._settings = settings

    def publish_many(self, hops: Sequence[NextHop]) -> None:
        """Publish hops on one producer connection (a bulk submission's route hops)."""
        with self._app.producer_or_acquire() as producer:
            for hop in hops:
                self.publish(hop, producer=producer)

    def publish(
        self, hop: NextHop, *, countdown: float | None = None, producer: Any = None
    ) -> None:
        """Send ``(query_id, seq)`` to the hop's queue. Nothing else enters the broker.

        A shadow's hop carries ``shadow.priority``. On Redis, kombu keeps one list per priority
        step and a worker empties the lower-numbered lists first, so with the default (9) a
        tier's workers answer users before they answer shadows."""
        args = [str(hop.query_id), hop.seq]
        headers = None
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
