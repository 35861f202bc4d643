"""Metric families from a ledger snapshot (pure), and a scrape that survives a dead database."""

from __future__ import annotations

from decimal import Decimal

import fakeredis
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine

from routeq.metrics import LATENCY_BUCKETS_S, LatencyRow, LedgerCollector, Snapshot, metric_families


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
