"""Metric families from a ledger snapshot (pure), the rollup's rows turned into series with a
zero for every series the ladder can produce, and a scrape that survives a dead database."""

from __future__ import annotations

from decimal import Decimal

import fakeredis
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine

from routeq.config import Settings
from routeq.metrics import (
    LATENCY_BUCKETS_S,
    LatencyRow,
    LedgerCollector,
    Snapshot,
    fill_from_rollup,
    metric_families,
)


def exposition(snapshot: Snapshot) -> str:
    registry = CollectorRegistry()

    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return metric_families(snapshot)

    registry.register(Fixed())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_a_snapshot_becomes_prometheus_metrics() -> None:
    at_most = tuple(3 if bound >= 0.1 else 1 for bound in LATENCY_BUCKETS_S)
    snapshot = Snapshot(
        database_up=True,
        broker_up=True,
        queries=[("done", 5), ("running", 2)],
        finished=[("done", "cheap", 4), ("done", "mid", 1)],
        hops=[("call", "cheap", "done", 5), ("call", "cheap", "failed", 1)],
        escalations=[("mid", 1)],
        cost=[("call", "cheap", Decimal("0.25"))],
        latency=[LatencyRow("call", "cheap", count=4, sum_ms=900, at_most=at_most)],
        verdicts=[("cheap", True, 4), ("cheap", False, 1)],
        queue_depth=[("tier.cheap", 7)],
        batch_documents=[("rejected", 2)],
    )
    text = exposition(snapshot)
    assert 'routeq_up{component="database"} 1.0' in text
    assert 'routeq_queries{status="running"} 2.0' in text
    assert 'routeq_queries_finished_total{final_tier="cheap",status="done"} 4.0' in text
    assert 'routeq_hops_total{kind="call",status="failed",tier="cheap"} 1.0' in text
    assert 'routeq_escalations_total{tier="mid"} 1.0' in text
    assert 'routeq_cost_usd_total{kind="call",tier="cheap"} 0.25' in text
    assert 'routeq_model_latency_seconds_bucket{kind="call",le="0.05",tier="cheap"} 1.0' in text
    assert 'routeq_model_latency_seconds_bucket{kind="call",le="+Inf",tier="cheap"} 4.0' in text
    assert 'routeq_model_latency_seconds_sum{kind="call",tier="cheap"} 0.9' in text
    assert 'routeq_judge_verdicts_total{passed="false",tier="cheap"} 1.0' in text
    assert 'routeq_queue_depth{queue="tier.cheap"} 7.0' in text
    assert 'routeq_batch_documents{status="rejected"} 2.0' in text


def test_a_scrape_answers_with_up_0_when_the_database_is_down() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/x")
    broker = fakeredis.FakeRedis()
    broker.rpush("tier.cheap", b"m1", b"m2")
    registry = CollectorRegistry()
    registry.register(LedgerCollector(engine, broker, ["tier.cheap", "route"]))
    text = generate_latest(registry).decode()
    assert 'routeq_up{component="database"} 0.0' in text
    assert 'routeq_up{component="broker"} 1.0' in text
    assert 'routeq_queue_depth{queue="tier.cheap"} 2.0' in text
    assert 'routeq_queue_depth{queue="route"} 0.0' in text


# ``settings`` (tests/conftest.py) is the default ladder: cheap (sim-small), mid (sim-medium),
# frontier (sim-large, $5 / $15 per million tokens), judged by sim-judge.


def test_with_zero_queries_every_series_of_the_ladder_reads_0(settings: Settings) -> None:
    snapshot = Snapshot(database_up=True)
    fill_from_rollup(snapshot, {}, settings)
    text = exposition(snapshot)
    for sample in (
        'routeq_queries{status="queued"} 0.0',
        'routeq_queries_finished_total{final_tier="cheap",status="done"} 0.0',
        'routeq_hops_total{kind="call",status="failed",tier="frontier"} 0.0',
        'routeq_escalations_total{tier="mid"} 0.0',
        'routeq_cost_usd_total{kind="judge",tier="cheap"} 0.0',
        'routeq_tokens_total{direction="output",kind="call",tier="mid"} 0.0',
        'routeq_provider_errors_total{kind="call",model="sim-small",status="429",tier="cheap"} 0.0',
        'routeq_model_latency_seconds_count{kind="call",tier="cheap"} 0.0',
        'routeq_query_latency_seconds_count{status="done"} 0.0',
        'routeq_judge_verdicts_total{passed="true",tier="mid"} 0.0',
        'routeq_judge_errors_total{outcome="accepted_unjudged",tier="cheap"} 0.0',
        'routeq_savings_usd{top_tier="frontier"} 0.0',
        'routeq_top_tier_counterfactual_usd{top_tier="frontier"} 0.0',
        'routeq_batch_documents{status="unsubmitted"} 0.0',
        'routeq_provider_requests{outcome="unknown"} 0.0',
    ):
        assert sample in text, sample


def test_rollup_rows_become_cumulative_histograms_errors_and_savings(settings: Settings) -> None:
    totals = {
        "model_latency_bucket": {
            ("call", "cheap", "0.1"): Decimal(2),
            ("call", "cheap", "1"): Decimal(1),
            ("call", "cheap", "+Inf"): Decimal(1),
        },
        "model_latency_sum": {("call", "cheap"): Decimal("70.5")},
        "query_latency_bucket": {("done", "2.5"): Decimal(3)},
        "query_latency_sum": {("done",): Decimal("4.5")},
        "provider_errors": {
            ("call", "cheap", "sim-small", "429"): Decimal(4),
            ("call", "cheap", "sim-small", "none"): Decimal(1),
        },
        "judge_errors": {("mid", "accepted_unjudged"): Decimal(2)},
        "cost_usd": {
            ("call", "cheap", "sim-small"): Decimal("0.001"),
            ("call", "cheap", "old-model"): Decimal("0.002"),  # a model renamed since
        },
        "counterfactual_tokens": {("input",): Decimal(100_000), ("output",): Decimal(10_000)},
        "comparable_cost": {(): Decimal("0.2")},
    }
    snapshot = Snapshot(database_up=True)
    fill_from_rollup(snapshot, totals, settings)  # type: ignore[arg-type]
    text = exposition(snapshot)
    assert 'routeq_model_latency_seconds_bucket{kind="call",le="0.05",tier="cheap"} 0.0' in text
    assert 'routeq_model_latency_seconds_bucket{kind="call",le="0.1",tier="cheap"} 2.0' in text
    assert 'routeq_model_latency_seconds_bucket{kind="call",le="60",tier="cheap"} 3.0' in text
    assert 'routeq_model_latency_seconds_bucket{kind="call",le="+Inf",tier="cheap"} 4.0' in text
    assert 'routeq_model_latency_seconds_sum{kind="call",tier="cheap"} 70.5' in text
    assert 'routeq_query_latency_seconds_bucket{le="1",status="done"} 0.0' in text
    assert 'routeq_query_latency_seconds_bucket{le="2.5",status="done"} 3.0' in text
    assert 'routeq_query_latency_seconds_count{status="done"} 3.0' in text
    assert (
        'routeq_provider_errors_total{kind="call",model="sim-small",status="429",tier="cheap"} 4.0'
        in text
    )
    assert 'status="none",tier="cheap"} 1.0' in text
    assert 'routeq_judge_errors_total{outcome="accepted_unjudged",tier="mid"} 2.0' in text
    assert 'routeq_cost_usd_total{kind="call",tier="cheap"} 0.003' in text
    # 100k in and 10k out at the top tier's $5 / $15 per Mtok: $0.65, of which $0.45 saved
    assert 'routeq_top_tier_counterfactual_usd{top_tier="frontier"} 0.65' in text
    assert 'routeq_compared_cost_usd{top_tier="frontier"} 0.2' in text
    assert 'routeq_savings_usd{top_tier="frontier"} 0.45' in text


def test_without_settings_only_what_the_rollup_holds_is_reported() -> None:
    snapshot = Snapshot(database_up=True)
    fill_from_rollup(snapshot, {"escalations": {("mid",): Decimal(3)}}, None)
    text = exposition(snapshot)
    assert 'routeq_escalations_total{tier="mid"} 3.0' in text
    assert "routeq_savings_usd" not in text
    assert 'routeq_queries{status="done"} 0.0' in text  # statuses need no ladder
