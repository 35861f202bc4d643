"""routeq's own numbers for Prometheus, read from the ledger's metrics rollup and the broker.

The ledger is the source of truth, so the exporter does not count events in worker memory
(which would be lost on restart and split across processes). Nor does it aggregate the ledger's
tables on each scrape, which would cost more as the ledger grows: triggers (migration 0005)
append what every row write changes to ``metrics.deltas``, and a scrape folds those into
``metrics.totals`` (``metrics_fold.sql``) and reads that table, whose size depends on the ladder
(tiers, kinds, statuses), not on the number of queries. So a scrape's cost is the writes since
the last scrape plus a constant. Counters stay monotonic when old ledger rows are deleted. Live
states (queued, running, pending) are counted by the same read from the partial indexes on live
rows (``metrics.live_gauges``, migration 0019): they change at every step, and counting them at
each commit cost every query two trigger firings for numbers only a scrape reads.

``read_snapshot`` does the I/O; ``metric_families`` turns a snapshot into metrics and is pure,
so it unit-tests without services. Every series the ladder can produce is present from the
start, at 0 (an alert on ``rate(routeq_provider_errors_total[5m])`` needs the series to exist).

Metric names (the Grafana dashboard in ops/grafana is built on these):

- ``routeq_queries{status}``: queries by current status (gauge)
- ``routeq_queries_finished_total{status,final_tier}``: done/failed queries
- ``routeq_shadows_finished_total{status,final_tier}``: finished shadow queries (shadow A/B;
  they are not counted as queries, in latency or in the counterfactual)
- ``routeq_shadows_compared_total{tier,shadow_tier}`` and
  ``routeq_shadow_quality_gain_total{tier,shadow_tier}``: compared shadows, and the sum of their
  quality gains (shadow minus kept answer, 0-1): their ratio is the shadow quality drop
- ``routeq_query_latency_seconds{status}``: end-to-end latency of finished top-level queries
  (submission to final state; histogram)
- ``routeq_hops_total{kind,tier,status}``: finished hops (done/failed) by kind and outcome
- ``routeq_escalations_total{tier}``: escalations into ``tier`` (the ``escalations`` view)
- ``routeq_cost_usd_total{kind,tier}``: spend on provider requests, failed attempts included
- ``routeq_tokens_total{kind,tier,direction}``: tokens sent (input) and received (output)
- ``routeq_provider_errors_total{kind,tier,model,status}``: failed provider requests by HTTP
  status (``429``: rate limited; ``none``: no response, e.g. a timeout or a refused connection)
- ``routeq_model_latency_seconds{kind,tier}``: latency of successful model requests (histogram)
- ``routeq_judge_verdicts_total{tier,passed}``: verdicts on each tier's answers (pass rate)
- ``routeq_judge_errors_total{tier,outcome}``: the judge itself failed; ``accepted_unjudged``
  (the answer was accepted without a verdict), ``failed_closed`` (it was escalated) or
  ``gave_up`` (the judge step hit its delivery cap)
- ``routeq_top_tier_counterfactual_usd{top_tier}``, ``routeq_compared_cost_usd{top_tier}``,
  ``routeq_savings_usd{top_tier}``: what the answered queries would have cost sent straight to
  the top tier (their accepted calls' tokens at its configured prices), what they did cost, and
  the difference
- ``routeq_queue_depth{queue}``: messages waiting in each Celery queue
- ``routeq_batch_documents{status}``: batch documents by state
- ``routeq_provider_requests{outcome}``: provider requests by outcome (gauge)
- ``routeq_budget_limit_usd``, ``routeq_budget_spent_usd``, ``routeq_budget_reserved_usd`` and
  ``routeq_budget_refused_calls`` ``{budget,subject}``: each budget's use in its current period
  (``[[spend.budgets]]``; a budget per user has a series per user)
- ``routeq_endpoint_breaker_open``, ``routeq_endpoint_failures`` and
  ``routeq_endpoint_retry_after_seconds`` ``{tier,model}``: the provider guard's state of each
  endpoint (``tier`` is ``judge`` for the judge's): its breaker, its failed attempts in a row,
  and what is left of a ``Retry-After`` block
- ``routeq_up{component}``: 1 when the database / broker answered this scrape
"""

from __future__ import annotations

import logging
from collections import defaultdict
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
from sqlalchemy import Engine

from routeq.config import Settings
from routeq.ledger.sql import named
from routeq.pricing import counterfactual_cost
from routeq.records import FINAL_QUERY_STATUSES, QueryStatus, RequestOutcome
from routeq.worker.guard import endpoint_health

log = logging.getLogger("routeq.metrics")

_Family = TypeVar("_Family", GaugeMetricFamily, CounterMetricFamily)

# Upper bounds of the histograms, in seconds. The rollup's metrics.bucket() (migration 0005)
# sorts observations into these same bounds; tests/integration/test_metrics_rollup.py checks.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUERY_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)

QUERY_STATUSES = tuple(status.value for status in QueryStatus)
FINAL_STATUSES = FINAL_QUERY_STATUSES
REQUEST_OUTCOMES = tuple(outcome.value for outcome in RequestOutcome)
JUDGE_ERROR_OUTCOMES = ("accepted_unjudged", "failed_closed", "gave_up")


@dataclass(frozen=True)
class LatencyRow:
    kind: str
    tier: str
    count: int
    sum_ms: int
    at_most: tuple[int, ...]  # cumulative counts for LATENCY_BUCKETS_S


@dataclass(frozen=True)
class QueryLatencyRow:
    status: str
    count: int
    sum_s: float
    at_most: tuple[int, ...]  # cumulative counts for QUERY_LATENCY_BUCKETS_S


@dataclass(frozen=True)
class Savings:
    """The answered queries against the same queries sent straight to the top tier."""

    top_tier: str
    counterfactual: Decimal
    actual: Decimal

    @property
    def saved(self) -> Decimal:
        return self.counterfactual - self.actual


@dataclass
class Snapshot:
    """What one scrape read. A component that did not answer leaves its part empty."""

    database_up: bool = False
    broker_up: bool = False
    queries: list[tuple[str, int]] = field(default_factory=list)
    finished: list[tuple[str, str, int]] = field(default_factory=list)
    shadows_finished: list[tuple[str, str, int]] = field(default_factory=list)
    shadows_compared: list[tuple[str, str, int]] = field(default_factory=list)
    shadow_quality_gain: list[tuple[str, str, Decimal]] = field(default_factory=list)
    hops: list[tuple[str, str, str, int]] = field(default_factory=list)
    escalations: list[tuple[str, int]] = field(default_factory=list)
    cost: list[tuple[str, str, Decimal]] = field(default_factory=list)
    latency: list[LatencyRow] = field(default_factory=list)
    verdicts: list[tuple[str, bool, int]] = field(default_factory=list)
    queue_depth: list[tuple[str, int]] = field(default_factory=list)
    batch_documents: list[tuple[str, int]] = field(default_factory=list)
    reconciler: list[tuple[str, int]] = field(default_factory=list)  # (total name, value)
    oldest_live_hop_s: list[tuple[str, float]] = field(default_factory=list)  # (status, age)
    # (budget, subject, limit, spent, reserved, refused) in each budget's current period
    budgets: list[tuple[str, str, float, float, float, int]] = field(default_factory=list)
    # (tier or "judge", model, breaker open, failures in a row, Retry-After left) per endpoint
    endpoints: list[tuple[str, str, bool, int, float]] = field(default_factory=list)  # EndpointRow
    requests: list[tuple[str, int]] = field(default_factory=list)  # (outcome, count)
    provider_errors: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    tokens: list[tuple[str, str, str, int]] = field(default_factory=list)  # kind, tier, direction
    query_latency: list[QueryLatencyRow] = field(default_factory=list)
    judge_errors: list[tuple[str, str, int]] = field(default_factory=list)  # tier, outcome
    savings: Savings | None = None


@dataclass(frozen=True)
class Ladder:
    """The label values a configuration can produce, so that every series exists from the
    first scrape (at 0) instead of appearing with its first event."""

    tiers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # each tier's model, in ladder order
    judged: tuple[str, ...] = ()  # tiers whose answers are judged
    judge_model: str | None = None  # the LLM judge, when one is configured

    @classmethod
    def of(cls, settings: Settings) -> Ladder:
        judging = settings.judge.enabled
        return cls(
            tiers=tuple(tier.name for tier in settings.tiers),
            models=tuple(tier.model for tier in settings.tiers),
            judged=tuple(tier.name for tier in settings.tiers if judging and tier.judge),
            judge_model=settings.judge.model.model if judging and settings.judge.model else None,
        )

    def endpoints(self) -> list[tuple[str, str, str]]:
        """(kind, tier, model) of every provider request the ladder can make."""
        calls = [("call", tier, model) for tier, model in zip(self.tiers, self.models, strict=True)]
        judge = self.judge_model
        return calls + ([("judge", tier, judge) for tier in self.judged] if judge else [])


Totals = dict[str, dict[tuple[str, ...], Decimal]]


def read_snapshot(
    engine: Engine,
    broker: redis.Redis,
    queues: Sequence[str],
    settings: Settings | None = None,
) -> Snapshot:
    """Everything one scrape needs: fold the rollup and read it (one transaction), then one
    Redis pipeline. ``settings`` gives the label values to report at 0 and the top tier's
    prices for the savings; without it only what the rollup holds is reported."""
    snapshot = Snapshot()
    totals: Totals = defaultdict(dict)
    try:
        with engine.begin() as conn:
            conn.execute(named("metrics_fold"))
            for name, labels, value in conn.execute(named("metrics_totals")):
                totals[name][tuple(labels)] = Decimal(value)
            reconciler = conn.execute(named("metrics_reconciler")).all()
            oldest = conn.execute(named("metrics_oldest_live_hop")).all()
            budgets = conn.execute(named("budget_use")).all()
        snapshot.database_up = True
    except Exception as error:  # a scrape must answer even when the database does not
        log.warning("metrics: database unavailable: %s", type(error).__name__)
    else:
        fill_from_rollup(snapshot, totals, settings)
        for stats in reconciler:
            names = ("runs", "republished", "settled", "unknown_requests")
            snapshot.reconciler = [(n, int(value)) for n, value in zip(names, stats, strict=True)]
        snapshot.oldest_live_hop_s = [(r[0], float(r[1])) for r in oldest if r[1] is not None]
        snapshot.budgets = [
            (r.budget, r.subject, float(r.limit_usd), float(r.spent), float(r.reserved), r.refused)
            for r in budgets
        ]
    try:
        pipe = broker.pipeline()
        for queue in queues:
            pipe.llen(queue)
        snapshot.queue_depth = list(zip(queues, (int(n) for n in pipe.execute()), strict=True))
        if settings is not None:
            snapshot.endpoints = _endpoint_health(broker, settings)
        snapshot.broker_up = True
    except redis.RedisError as error:
        log.warning("metrics: broker unavailable: %s", type(error).__name__)
    return snapshot


def _endpoint_health(
    broker: redis.Redis, settings: Settings
) -> list[tuple[str, str, bool, int, float]]:
    """The provider guard's state of every endpoint the configuration calls."""
    labelled = [(tier.name, endpoint) for tier in settings.tiers for endpoint in tier.endpoints]
    if settings.judge.model is not None:
        labelled.append(("judge", settings.judge.model))
    health = endpoint_health(broker, [endpoint for _, endpoint in labelled])
    return [
        (label, endpoint.model, state.breaker_open, state.failures, state.blocked_s)
        for (label, endpoint), state in zip(labelled, health, strict=True)
    ]


def fill_from_rollup(snapshot: Snapshot, totals: Totals, settings: Settings | None) -> None:
    """Turn the rollup's rows (``metrics.totals``: name -> label values -> value) into the
    snapshot's series, with a zero for every series the configured ladder can produce. Pure."""
    ladder = Ladder.of(settings) if settings is not None else Ladder()

    def series(name: str, zeros: Iterable[tuple[str, ...]] = ()) -> list[tuple[Any, ...]]:
        values = {labels: Decimal(0) for labels in zeros}
        values.update(totals.get(name, {}))
        return [(*labels, value) for labels, value in sorted(values.items())]

    tiers = ladder.tiers
    snapshot.queries = [(s, int(n)) for s, n in series("queries", [(s,) for s in QUERY_STATUSES])]
    finished_zeros = [("done", t) for t in tiers] + [("failed", "")]
    snapshot.finished = [(s, t, int(n)) for s, t, n in series("queries_finished", finished_zeros)]
    snapshot.shadows_finished = [
        (s, t, int(n)) for s, t, n in series("shadows_finished", [("done", t) for t in tiers[1:]])
    ]
    pairs = [(a, b) for i, a in enumerate(tiers) for b in tiers[i + 1 :]]
    snapshot.shadows_compared = [(a, b, int(n)) for a, b, n in series("shadows_compared", pairs)]
    snapshot.shadow_quality_gain = list(series("shadow_quality_gain", pairs))
    hop_labels = [(k, t) for k in ("route", "call") for t in tiers]
    hop_labels += [("judge", t) for t in ladder.judged] + [("combine", "")]
    hop_zeros = [(k, t, s) for k, t in hop_labels for s in FINAL_STATUSES]
    snapshot.hops = [(k, t, s, int(n)) for k, t, s, n in series("hops", hop_zeros)]
    snapshot.escalations = [
        (t, int(n)) for t, n in series("escalations", [(t,) for t in tiers[1:]])
    ]
    spent: dict[tuple[str, str], Decimal] = {(k, t): Decimal(0) for k, t, _ in ladder.endpoints()}
    for (kind, tier, _model), value in totals.get("cost_usd", {}).items():
        spent[(kind, tier)] = spent.get((kind, tier), Decimal(0)) + value
    snapshot.cost = [(k, t, v) for (k, t), v in sorted(spent.items())]
    token_zeros = [(k, t, d) for k, t, _ in ladder.endpoints() for d in ("input", "output")]
    snapshot.tokens = [(k, t, d, int(n)) for k, t, d, n in series("tokens", token_zeros)]
    error_zeros = [(k, t, m, "429") for k, t, m in ladder.endpoints()]
    snapshot.provider_errors = [
        (k, t, m, s, int(n)) for k, t, m, s, n in series("provider_errors", error_zeros)
    ]
    snapshot.requests = [
        (o, int(n)) for o, n in series("provider_requests", [(o,) for o in REQUEST_OUTCOMES])
    ]
    verdict_zeros = [(t, p) for t in ladder.judged for p in ("false", "true")]
    snapshot.verdicts = [
        (t, p == "true", int(n)) for t, p, n in series("judge_verdicts", verdict_zeros)
    ]
    judge_error_zeros = [(t, o) for t in ladder.judged for o in JUDGE_ERROR_OUTCOMES]
    snapshot.judge_errors = [
        (t, o, int(n)) for t, o, n in series("judge_errors", judge_error_zeros)
    ]
    doc_states = (*QUERY_STATUSES, "rejected", "unsubmitted")
    snapshot.batch_documents = [
        (s, int(n)) for s, n in series("batch_documents", [(s,) for s in doc_states])
    ]
    model_keys = {(k, t) for k, t, _ in ladder.endpoints()}
    model_keys |= {(k, t) for k, t in totals.get("model_latency_sum", {})}
    model_buckets = totals.get("model_latency_bucket", {})
    snapshot.latency = []
    for kind, tier in sorted(model_keys):
        counts = {le: n for (k, t, le), n in model_buckets.items() if (k, t) == (kind, tier)}
        at_most, count = _cumulative(counts, LATENCY_BUCKETS_S)
        total_s = totals.get("model_latency_sum", {}).get((kind, tier), Decimal(0))
        snapshot.latency.append(LatencyRow(kind, tier, count, int(total_s * 1000), at_most))
    query_buckets = totals.get("query_latency_bucket", {})
    snapshot.query_latency = []
    for status in FINAL_STATUSES:
        counts = {le: n for (s, le), n in query_buckets.items() if s == status}
        at_most, count = _cumulative(counts, QUERY_LATENCY_BUCKETS_S)
        total_s = totals.get("query_latency_sum", {}).get((status,), Decimal(0))
        snapshot.query_latency.append(QueryLatencyRow(status, count, float(total_s), at_most))
    if settings is not None:
        tokens = totals.get("counterfactual_tokens", {})
        snapshot.savings = Savings(
            top_tier=settings.top_tier.name,
            counterfactual=counterfactual_cost(
                settings.top_tier,
                int(tokens.get(("input",), 0)),
                int(tokens.get(("output",), 0)),
            ),
            actual=totals.get("comparable_cost", {}).get((), Decimal(0)),
        )


def _cumulative(
    counts: dict[str, Decimal], bounds: tuple[float, ...]
) -> tuple[tuple[int, ...], int]:
    """Per-bucket counts keyed by upper bound ('0.25', '+Inf') → cumulative counts and total."""
    running, cumulative = 0, []
    for bound in bounds:
        running += int(counts.get(_bound(bound), 0))
        cumulative.append(running)
    return tuple(cumulative), running + int(counts.get("+Inf", 0))


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
        "routeq_shadows_finished",
        "Finished shadow queries (shadow A/B samples) by outcome and tier",
        ["status", "final_tier"],
        snapshot.shadows_finished,
    )
    yield _counter(
        "routeq_shadows_compared",
        "Shadows with a verdict on both answers, by the kept answer's tier and the shadow's",
        ["tier", "shadow_tier"],
        snapshot.shadows_compared,
    )
    yield _counter(
        "routeq_shadow_quality_gain",
        "Sum of compared shadows' quality gain over the kept answer (0-1 scale each)",
        ["tier", "shadow_tier"],
        snapshot.shadow_quality_gain,
    )
    query_latency = HistogramMetricFamily(
        "routeq_query_latency_seconds",
        "End-to-end latency of finished top-level queries (submission to final state)",
        labels=["status"],
    )
    for query_row in snapshot.query_latency:
        query_latency.add_metric(
            [query_row.status],
            _buckets(QUERY_LATENCY_BUCKETS_S, query_row.at_most, query_row.count),
            sum_value=query_row.sum_s,
        )
    yield query_latency
    yield _counter(
        "routeq_hops",
        "Finished hops by kind, tier and outcome",
        ["kind", "tier", "status"],
        snapshot.hops,
    )
    yield _counter(
        "routeq_escalations",
        "Escalations into this tier (a call on a tier the query had not used yet)",
        ["tier"],
        snapshot.escalations,
    )
    yield _counter(
        "routeq_cost_usd",
        "Spend on provider requests (failed attempts included), in USD",
        ["kind", "tier"],
        [(kind, tier, float(cost)) for kind, tier, cost in snapshot.cost],
    )
    yield _counter(
        "routeq_tokens",
        "Tokens of provider requests: input sent, output received",
        ["kind", "tier", "direction"],
        snapshot.tokens,
    )
    yield _counter(
        "routeq_provider_errors",
        "Failed provider requests by HTTP status (429: rate limited; none: no response)",
        ["kind", "tier", "model", "status"],
        snapshot.provider_errors,
    )
    latency = HistogramMetricFamily(
        "routeq_model_latency_seconds",
        "Latency of successful model requests",
        labels=["kind", "tier"],
    )
    for row in snapshot.latency:
        latency.add_metric(
            [row.kind, row.tier],
            _buckets(LATENCY_BUCKETS_S, row.at_most, row.count),
            sum_value=row.sum_ms / 1000,
        )
    yield latency
    yield _counter(
        "routeq_judge_verdicts",
        "Judge verdicts on each tier's answers",
        ["tier", "passed"],
        [(tier, "true" if passed else "false", count) for tier, passed, count in snapshot.verdicts],
    )
    yield _counter(
        "routeq_judge_errors",
        "The judge itself failed: answer accepted unjudged (fail open) or failed closed",
        ["tier", "outcome"],
        snapshot.judge_errors,
    )
    if snapshot.savings is not None:
        savings = snapshot.savings
        for name, documentation, value in (
            (
                "routeq_top_tier_counterfactual_usd",
                "What the answered queries would have cost sent straight to the top tier",
                savings.counterfactual,
            ),
            ("routeq_compared_cost_usd", "What those same queries did cost", savings.actual),
            ("routeq_savings_usd", "Top-tier counterfactual minus actual cost", savings.saved),
        ):
            yield _gauge(name, documentation, ["top_tier"], [(savings.top_tier, float(value))])
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
    budget_series = (
        ("routeq_budget_limit_usd", "A budget's limit in its current period", 2),
        ("routeq_budget_spent_usd", "Spent against a budget in its current period", 3),
        ("routeq_budget_reserved_usd", "Worst case of calls in flight against a budget", 4),
        ("routeq_budget_refused_calls", "Calls a budget refused in its current period", 5),
    )
    for name, documentation, column in budget_series:
        rows = [(use[0], use[1], use[column]) for use in snapshot.budgets]
        yield _gauge(name, documentation, ["budget", "subject"], rows)
    endpoint_series = (
        ("routeq_endpoint_breaker_open", "1 while an endpoint's circuit breaker is open", 2),
        ("routeq_endpoint_failures", "An endpoint's failed attempts in a row", 3),
        ("routeq_endpoint_retry_after_seconds", "Left of a provider's Retry-After block", 4),
    )
    for name, documentation, column in endpoint_series:
        rows = [(e[0], e[1], float(e[column])) for e in snapshot.endpoints]
        yield _gauge(name, documentation, ["tier", "model"], rows)


def _buckets(
    bounds: tuple[float, ...], at_most: tuple[int, ...], count: int
) -> list[tuple[str, float]]:
    buckets = [(_bound(bound), float(n)) for bound, n in zip(bounds, at_most, strict=True)]
    buckets.append(("+Inf", float(count)))
    return buckets


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
    """A Prometheus collector that reads the rollup and the queues on every scrape."""

    def __init__(
        self,
        engine: Engine,
        broker: redis.Redis,
        queues: Sequence[str],
        settings: Settings | None = None,
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._queues = list(queues)
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        snapshot = read_snapshot(self._engine, self._broker, self._queues, self._settings)
        yield from metric_families(snapshot)
