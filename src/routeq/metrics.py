"""routeq's own numbers for Prometheus, read from the ledger and the broker at scrape time.

The ledger is the source of truth, so the exporter does not count events in worker memory
(which would be lost on restart and split across processes): every scrape asks Postgres how many
queries, hops, escalations and dollars there are, and Redis how long each queue is. Counters are
monotonic because finished rows never change state (deleting old rows would break that: retention
needs a rollup table feeding the counters first). ``read_snapshot`` does the I/O;
``metric_families`` turns a snapshot into metrics and is pure, so it unit-tests without services.

Metric names (the Grafana dashboard in ops/grafana is built on these):

- ``routeq_queries{status}``: queries by current status (gauge)
- ``routeq_queries_finished_total{status,final_tier}``: done/failed queries
- ``routeq_hops_total{kind,tier,status}``: finished hops (done/failed) by kind and outcome
- ``routeq_escalations_total{tier}``: calls that escalated a query into ``tier``
- ``routeq_cost_usd_total{kind,tier}``: spend recorded on hops (calls and judge calls)
- ``routeq_model_latency_seconds{kind,tier}``: latency of successful model requests (histogram)
- ``routeq_judge_verdicts_total{tier,passed}``: verdicts on each tier's answers (pass rate)
- ``routeq_queue_depth{queue}``: messages waiting in each Celery queue
- ``routeq_batch_documents{status}``: batch documents by state
- ``routeq_up{component}``: 1 when the database / broker answered this scrape
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text

log = logging.getLogger("routeq.metrics")

_Family = TypeVar("_Family", GaugeMetricFamily, CounterMetricFamily)

LATENCY_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class LatencyRow:
    kind: str
    tier: str
    count: int
    sum_ms: int
    at_most: tuple[int, ...]  # cumulative counts for LATENCY_BUCKETS_S


@dataclass
class Snapshot:
    """What one scrape read. A component that did not answer leaves its part empty."""

    database_up: bool = False
    broker_up: bool = False
    queries: list[tuple[str, int]] = field(default_factory=list)
    finished: list[tuple[str, str, int]] = field(default_factory=list)
    hops: list[tuple[str, str, str, int]] = field(default_factory=list)
    escalations: list[tuple[str, int]] = field(default_factory=list)
    cost: list[tuple[str, str, Decimal]] = field(default_factory=list)
    latency: list[LatencyRow] = field(default_factory=list)
    verdicts: list[tuple[str, bool, int]] = field(default_factory=list)
    queue_depth: list[tuple[str, int]] = field(default_factory=list)
    batch_documents: list[tuple[str, int]] = field(default_factory=list)
    reconciler: list[tuple[str, int]] = field(default_factory=list)  # (total name, value)
    oldest_live_hop_s: list[tuple[str, float]] = field(default_factory=list)  # (status, age)
    requests: list[tuple[str, int]] = field(default_factory=list)  # (outcome, count)


_BUCKET_COLUMNS = ", ".join(
    f"count(*) FILTER (WHERE r.latency_ms <= {int(bound * 1000)})" for bound in LATENCY_BUCKETS_S
)
_SQL = {
    "queries": "SELECT status, count(*) FROM queries GROUP BY status",
    "finished": (
        "SELECT status, coalesce(final_tier, ''), count(*) FROM queries "
        "WHERE status IN ('done', 'failed') GROUP BY 1, 2"
    ),
    "hops": (
        "SELECT kind, coalesce(tier, ''), status, count(*) FROM hops "
        "WHERE status IN ('done', 'failed') GROUP BY 1, 2, 3"
    ),
    "escalations": (
        "SELECT h.tier, count(*) FROM hops h WHERE h.kind = 'call' AND EXISTS ("
        "SELECT 1 FROM hops p WHERE p.query_id = h.query_id AND p.kind = 'call' "
        "AND p.seq < h.seq) GROUP BY 1"
    ),
    "cost": "SELECT kind, coalesce(tier, ''), sum(cost) FROM hops GROUP BY 1, 2",
    "latency": (
        "SELECT h.kind, coalesce(h.tier, ''), count(*), coalesce(sum(r.latency_ms), 0), "
        f"{_BUCKET_COLUMNS} FROM provider_requests r JOIN hops h ON h.id = r.hop_id "
        "WHERE r.outcome = 'ok' GROUP BY 1, 2"
    ),
    "verdicts": (
        "SELECT coalesce(tier, ''), passed, count(*) FROM hops "
        "WHERE kind = 'judge' AND passed IS NOT NULL GROUP BY 1, 2"
    ),
    "batch_documents": (
        "SELECT CASE WHEN d.rejected IS NOT NULL THEN 'rejected' "
        "ELSE coalesce(q.status, 'unsubmitted') END, count(*) "
        "FROM batch_documents d LEFT JOIN queries q ON q.id = d.query_id GROUP BY 1"
    ),
    "reconciler": (
        "SELECT runs, republished, settled, unknown_requests FROM reconciler_stats WHERE id = 1"
    ),
    # served by the partial index on live hops
    "oldest_live_hop": (
        "SELECT status, extract(epoch FROM now() - min(created_at)) FROM hops "
        "WHERE status IN ('queued', 'running') GROUP BY 1"
    ),
    "requests": "SELECT outcome, count(*) FROM provider_requests GROUP BY 1",
}


def read_snapshot(engine: Engine, broker: redis.Redis, queues: Sequence[str]) -> Snapshot:
    """Everything one scrape needs, in one read-only transaction plus one Redis pipeline."""
    snapshot = Snapshot()
    try:
        with engine.connect() as conn:
            rows = {
                name: [tuple(row) for row in conn.execute(text(sql))] for name, sql in _SQL.items()
            }
        snapshot.database_up = True
    except Exception as error:  # a scrape must answer even when the database does not
        log.warning("metrics: database unavailable: %s", type(error).__name__)
        rows = {}
    snapshot.queries = [(r[0], int(r[1])) for r in rows.get("queries", [])]
    snapshot.finished = [(r[0], r[1], int(r[2])) for r in rows.get("finished", [])]
    snapshot.hops = [(r[0], r[1], r[2], int(r[3])) for r in rows.get("hops", [])]
    snapshot.escalations = [(r[0] or "", int(r[1])) for r in rows.get("escalations", [])]
    snapshot.cost = [(r[0], r[1], Decimal(r[2] or 0)) for r in rows.get("cost", [])]
    snapshot.latency = [
        LatencyRow(r[0], r[1], int(r[2]), int(r[3]), tuple(int(v) for v in r[4:]))
        for r in rows.get("latency", [])
    ]
    snapshot.verdicts = [(r[0], bool(r[1]), int(r[2])) for r in rows.get("verdicts", [])]
    snapshot.batch_documents = [(r[0], int(r[1])) for r in rows.get("batch_documents", [])]
    for stats in rows.get("reconciler", []):
        names = ("runs", "republished", "settled", "unknown_requests")
        snapshot.reconciler = [(name, int(value)) for name, value in zip(names, stats, strict=True)]
    snapshot.oldest_live_hop_s = [(r[0], float(r[1])) for r in rows.get("oldest_live_hop", [])]
    snapshot.requests = [(r[0], int(r[1])) for r in rows.get("requests", [])]
    try:
        pipe = broker.pipeline()
        for queue in queues:
            pipe.llen(queue)
        snapshot.queue_depth = list(zip(queues, (int(n) for n in pipe.execute()), strict=True))
        snapshot.broker_up = True
    except redis.RedisError as error:
        log.warning("metrics: broker unavailable: %s", type(error).__name__)
    return snapshot


def metric_families(snapshot: Snapshot) -> Iterator[Metric]:
    """The Prometheus metric families of a snapshot. Pure."""
    up = GaugeMetricFamily("routeq_up", "1 when the component answered", labels=["component"])
    up.add_metric(["database"], float(snapshot.database_up))
    up.add_metric(["broker"], float(snapshot.broker_up))
    yield up
    yield _gauge("routeq_queries", "Queries by current status", ["status"], snapshot.queries)
    yield _counter(
        "routeq_queries_finished",
        "Finished queries by outcome and final tier",
        ["status", "final_tier"],
        snapshot.finished,
    )
    yield _counter(
        "routeq_hops",
        "Finished hops by kind, tier and outcome",
        ["kind", "tier", "status"],
        snapshot.hops,
    )
    yield _counter(
        "routeq_escalations",
        "Calls that escalated a query into this tier",
        ["tier"],
        snapshot.escalations,
    )
    yield _counter(
        "routeq_cost_usd",
        "Spend recorded on hops, in USD",
        ["kind", "tier"],
        [(kind, tier, float(cost)) for kind, tier, cost in snapshot.cost],
    )
    latency = HistogramMetricFamily(
        "routeq_model_latency_seconds",
        "Latency of successful model requests",
        labels=["kind", "tier"],
    )
    for row in snapshot.latency:
        buckets = [
            (_bound(bound), float(count))
            for bound, count in zip(LATENCY_BUCKETS_S, row.at_most, strict=True)
        ]
        buckets.append(("+Inf", float(row.count)))
        latency.add_metric([row.kind, row.tier], buckets, sum_value=row.sum_ms / 1000)
    yield latency
    yield _counter(
        "routeq_judge_verdicts",
        "Judge verdicts on each tier's answers",
        ["tier", "passed"],
        [(tier, "true" if passed else "false", count) for tier, passed, count in snapshot.verdicts],
    )
    yield _gauge(
        "routeq_queue_depth", "Messages waiting in each queue", ["queue"], snapshot.queue_depth
    )
    yield _gauge(
        "routeq_batch_documents",
        "Batch documents by state",
        ["status"],
        snapshot.batch_documents,
    )
    totals = dict(snapshot.reconciler)
    yield _counter("routeq_reconciler_runs", "Reconciler runs", [], [(totals.get("runs", 0),)])
    yield _counter(
        "routeq_reconciler_republished",
        "Hops the reconciler published again (lost message or expired lease)",
        [],
        [(totals.get("republished", 0),)],
    )
    yield _counter(
        "routeq_reconciler_settled",
        "Queries the reconciler moved on or closed (no live hop, no final state)",
        [],
        [(totals.get("settled", 0),)],
    )
    yield _gauge(
        "routeq_oldest_live_hop_age_seconds",
        "Age of the oldest queued or running hop",
        ["status"],
        snapshot.oldest_live_hop_s,
    )
    yield _gauge(
        "routeq_provider_requests",
        "Provider requests by outcome (pending: in flight; unknown: its worker died mid-call)",
        ["outcome"],
        snapshot.requests,
    )


def _bound(value: float) -> str:
    return f"{value:g}"


def _gauge(
    name: str, documentation: str, labels: list[str], rows: Iterable[tuple[Any, ...]]
) -> GaugeMetricFamily:
    return _filled(GaugeMetricFamily(name, documentation, labels=labels), rows)


def _counter(
    name: str, documentation: str, labels: list[str], rows: Iterable[tuple[Any, ...]]
) -> CounterMetricFamily:
    return _filled(CounterMetricFamily(name, documentation, labels=labels), rows)


def _filled(family: _Family, rows: Iterable[tuple[Any, ...]]) -> _Family:
    """Add one sample per row: the label values, then the number."""
    for *values, number in rows:
        family.add_metric([str(v) for v in values], float(number))
    return family


class LedgerCollector(Collector):
    """A Prometheus collector that reads the ledger and the queues on every scrape."""

    def __init__(self, engine: Engine, broker: redis.Redis, queues: Sequence[str]) -> None:
        self._engine = engine
        self._broker = broker
        self._queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        yield from metric_families(read_snapshot(self._engine, self._broker, self._queues))
