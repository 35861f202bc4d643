"""The reconciler: every accepted query reaches a final state, with no human in the loop.

Postgres is the truth and Redis only delivers, so whatever Redis loses (a flush, a restart
without persistence, a publish that failed after its commit, a worker killed before its ack),
the ledger still knows what is in flight. One run, every ``worker.reconcile_interval_s`` (Celery
beat), or once by hand (``routeq reconcile``; ``routeq recover`` is the same code):

1. **Lost messages.** Live hops untouched for ``reconcile_grace_s`` are compared with the
   messages Redis holds (every routeq queue, and the unacked messages of running workers; one
   held far longer than a live worker would hold it belongs to a dead worker and does not
   count). A queued hop with no live message is published again; so is a running hop past its
   lease (its worker is dead or stuck: a live worker renews the lease at every attempt). The
   hops are read again after the look at Redis, and only those that did not move meanwhile
   are published, so a message in transit is not doubled.
   Duplicates are harmless anyway: the claim lets one delivery work and turns the others away.
2. **Calls in flight.** Provider requests left ``pending`` by a delivery that is gone become
   ``unknown``: maybe paid, up to their ``max_cost``.
3. **Orphans.** An unfinished query with no live hop and no live piece (its last hop failed and
   the step that should have moved it on crashed, or the database went away at that moment) is
   moved on as if that hop had just failed, or closed as failed with the reason.
4. **Privacy.** Texts of queries older than ``privacy.retention_days`` are erased, and the
   final answers of privacy-``none`` queries closed more than ``privacy.answer_hold_s`` ago;
   hashes, token counts, costs and verdicts stay (``routeq.privacy``).

One run at a time (a Postgres advisory lock), set-based queries on the partial indexes of live
hops and queries, at most ``reconcile_batch`` hops and queries per run. Totals are kept in
``reconciler_stats`` for the metrics exporter.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import redis

from routeq.ledger import HopStatus, NextHop
from routeq.queue.app import RECONCILE_TASK, ROUTE_MANY_TASK, queue_names
from routeq.worker.runtime import Runtime
from routeq.worker.steps import settle_orphan

log = logging.getLogger("routeq.reconciler")

# kombu's Redis transport keeps messages of a queue in a list named after it (one list per
# priority step for non-default priorities) and the messages delivered to workers but not yet
# acknowledged in one hash.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED_HASH = "unacked"
_UNACKED_INDEX = "unacked_index"  # delivery tag -> when it was delivered
# Above this many messages in Redis, the look at the queues is skipped for one run (only expired
# leases are acted on), so a huge healthy backlog is not scanned every few seconds.
MAX_SCANNED_MESSAGES = 200_000

HopKey = tuple[uuid.UUID, int]


@dataclass
class ReconcileReport:
    """What one run did."""

    locked: bool = True  # False: another run held the lock; this one did nothing
    republished: list[NextHop] = field(default_factory=list)
    settled: int = 0
    unknown_requests: int = 0
    scanned_messages: int | None = None  # None: the scan was skipped (Redis unreachable/large)
    texts_erased: int = 0  # queries whose texts the privacy job erased (retention, mode none)
    duration_ms: int = 0

    @property
    def acted(self) -> bool:
        return bool(self.republished or self.settled or self.unknown_requests)

    def summary(self, *, hops_only: bool = False) -> str:
        kinds: dict[str, int] = {}
        for hop in self.republished:
            kinds[hop.kind.value] = kinds.get(hop.kind.value, 0) + 1
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        hops = f"re-publish{'' if hops_only else 'ed'} {len(self.republished)} hops"
        hops += f" ({detail})" if detail else ""
        if hops_only:
            return hops
        return (
            f"{hops}, settled {self.settled} queries, marked {self.unknown_requests} requests "
            "unknown"
        )


def message_hops(raw: bytes | str) -> tuple[list[HopKey], float | None] | None:
    """The ``(query_id, seq)`` hops a kombu message in Redis is about (one; a bulk route
    message's are many), with its ETA (a countdown's end, as a Unix time) if it has one;
    None for anything that is not a routeq hop message."""
    try:
        envelope = json.loads(raw)
        if isinstance(envelope, list):  # an unacked entry: [message, exchange, routing_key]
            envelope = envelope[0]
        headers = envelope["headers"]
        if not str(headers["task"]).startswith("routeq.") or headers["task"] == RECONCILE_TASK:
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        eta = headers.get("eta")
        when = datetime.fromisoformat(eta).timestamp() if eta else None
        if headers["task"] == ROUTE_MANY_TASK:
            return [(uuid.UUID(str(query_id)), 1) for query_id in args[0]], when
        return [(uuid.UUID(str(args[0])), int(args[1]))], when
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def hops_with_messages(
    client: redis.Redis, queues: Iterable[str], held_for_s: float = float("inf")
) -> tuple[set[HopKey], int]:
    """Every hop that has a live message in Redis, and how many messages were looked at.

    A message waiting in a queue is live. One held by a worker (kombu's ``unacked`` hash) is
    live unless that worker has held it for over ``held_for_s`` seconds past its ETA: a live
    worker starts what it reserved long before that, so such a message belongs to a dead worker
    and would only come back after the visibility timeout. Raises ``OverflowError`` above
    ``MAX_SCANNED_MESSAGES``."""
    names = [
        variant
        for queue in queues
        for variant in (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{p}" for p in _PRIORITY_STEPS))
    ]
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(name)
        pipe.hlen(_UNACKED_HASH)
        total = sum(int(n) for n in pipe.execute())
    if total > MAX_SCANNED_MESSAGES:
        raise OverflowError(f"{total} messages in Redis")
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.lrange(name, 0, -1)
        pipe.hgetall(_UNACKED_HASH)
        pipe.zrange(_UNACKED_INDEX, 0, -1, withscores=True)
        pipe.time()
        *waiting, unacked, delivered, (seconds, micros) = pipe.execute()
    found = {
        key
        for batch in waiting
        for raw in batch
        if (parsed := message_hops(raw))
        for key in parsed[0]
    }
    now = seconds + micros / 1e6
    delivered_at = {tag: score for tag, score in delivered}
    for tag, raw in unacked.items():
        parsed = message_hops(raw)
        if parsed is None:
            continue
        keys, eta = parsed
        since = max(delivered_at.get(tag, now), eta or 0.0)
        if now - since <= held_for_s:
            found.update(keys)
    return found, total


def reconcile(
    rt: Runtime, *, grace_s: float | None = None, dry_run: bool = False
) -> ReconcileReport:
    """One reconciler run (see the module docstring). ``dry_run`` reports what would be
    published without publishing, settling or marking anything."""
    started = time.monotonic()
    config = rt.settings.worker
    grace = config.reconcile_grace_s if grace_s is None else grace_s
    report = ReconcileReport()
    with rt.ledger.reconciler_lock() as locked:
        if not locked:
            report.locked = False
            return report
        if not dry_run:
            report.unknown_requests = rt.ledger.expire_pending_requests()
        report.republished = _lost_hops(rt, grace, config.reconcile_batch, report)
        if not dry_run:
            for hop in report.republished:
                rt.publisher.publish(hop, republished=True)
            for query_id in rt.ledger.orphans(grace, config.reconcile_batch):
                result = settle_orphan(rt, query_id)
                report.settled += 1
                for hop in result.publish:
                    rt.publisher.publish(hop)
        if not dry_run:
            privacy = rt.settings.privacy
            report.texts_erased = rt.ledger.erase_texts(
                older_than_days=privacy.retention_days,
                held_s=privacy.answer_hold_s,
                limit=config.reconcile_batch,
            )
            rt.ledger.fold_metrics()
        report.duration_ms = round((time.monotonic() - started) * 1000)
        if not dry_run:
            rt.ledger.record_reconcile_run(
                republished=len(report.republished),
                settled=report.settled,
                unknown_requests=report.unknown_requests,
                duration_ms=report.duration_ms,
            )
    return report


def _lost_hops(rt: Runtime, grace_s: float, limit: int, report: ReconcileReport) -> list[NextHop]:
    """Live hops that no message will ever deliver, or whose lease ran out."""
    candidates = rt.ledger.live_hops(grace_s, limit)
    if not candidates:
        report.scanned_messages = 0
        return []
    try:
        held_for = grace_s + rt.settings.time_limits.longest_lease_s
        present, report.scanned_messages = hops_with_messages(
            rt.broker, queue_names(rt.settings), held_for
        )
    except (redis.RedisError, OverflowError) as error:
        # Without a look at Redis only expired leases are certain: act on those alone.
        log.warning("reconciler: queues not scanned (%s)", type(error).__name__)
        present = None
    # A running hop is judged by its lease alone (its worker renews it while it works, even
    # if Redis lost the message); a queued one by whether any live message will deliver it.
    suspects = [
        live
        for live in candidates
        if (
            live.lease_expired
            if live.status == HopStatus.RUNNING.value
            else present is not None and (live.hop.query_id, live.hop.seq) not in present
        )
    ]
    now = rt.ledger.hop_states([(s.hop.query_id, s.hop.seq) for s in suspects])
    return [
        s.hop for s in suspects if now.get((s.hop.query_id, s.hop.seq)) == (s.status, s.attempts)
    ]
