"""Shadow A/B through real workers: sampled answers are answered again one tier up, judged,
never escalated; the user's answer and the batch's result stay as they were, and what shadows
cost is reported apart, in the traffic report, the batch's spend and the metrics."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stack import running_stack, sim_qualities

from routeq import Client
from routeq.config import Settings
from routeq.ledger import Ledger
from routeq.queue.app import create_app
from routeq.queue.publisher import Publisher
from routeq.records import HopKind, NextHop
from routeq.sim import SimConfig
from routeq.traffic_report import Period, read_report

pytestmark = pytest.mark.integration

SHADOW = {"enabled": True, "share": 1.0, "tier": "next", "pairwise": True}


def cheap_good_mid_bad() -> SimConfig:
    """The judge accepts every cheap answer and fails every mid one: a mid answer would be
    escalated to the frontier, were it not a shadow's."""
    return sim_qualities(small=1.0, medium=0.05)


def shadows_done(engine: sa.Engine, expected: int, timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT * FROM queries WHERE role = 'shadow' AND status = 'done'")
            ).all()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_shadows_run_one_tier_up_never_escalate_and_change_no_answer_or_batch_result(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    sampling = running_stack(
        tmp_path, migrated_url, broker_url, cheap_good_mid_bad(), shadow=SHADOW
    )
    with sampling as (stack, _):
        stack.start_worker("-c", "2")
        engine = sa.create_engine(migrated_url)
        with Client(stack.settings) as client:
            # When users' questions and a batch of short documents are answered on the cheap tier
            answers = [client.submit(f"hello {i}", user="ana").wait(timeout=60) for i in range(4)]
            batch = client.submit_batch(
                documents=[
                    {"id": f"d{i}", "text": f"Note {i}. The harbour crane moves containers."}
                    for i in range(2)
                ],
                name="notes",
            )
            batch.wait(timeout=60)
            results_before = {r.doc_id: (r.summary, r.final_tier) for r in batch.results()}
            # and every one of them is shadowed
            shadows = shadows_done(engine, expected=6)
            after = {a.query_id: client.status(a.query_id) for a in answers}
            results_after = batch.results()
            spent = client.batches.spent(batch.id)
            shadow_spent = client.batches.shadow_spent(batch.id)

    # Then each accepted answer has exactly one shadow, on the next tier, of role shadow
    assert all(a.ok and a.final_tier == "cheap" for a in answers)
    originals = {s.shadow_of for s in shadows}
    documents = {r.query_id for r in results_after}
    assert len(shadows) == 6 and originals == {a.query_id for a in answers} | documents
    with engine.connect() as conn:
        hops = {
            s.id: conn.execute(
                sa.text("SELECT * FROM hops WHERE query_id = :id ORDER BY seq"), {"id": s.id}
            ).all()
            for s in shadows
        }
    for shadow in shadows:
        kinds = [(h.kind, h.tier) for h in hops[shadow.id]]
        # routed to mid by the shadow sample, judged (and failed), and never escalated
        assert kinds == [("route", "mid"), ("call", "mid"), ("judge", "mid")], kinds
        route, _, verdict = hops[shadow.id]
        assert route.policy == "shadow" and "shadow of cheap" in route.reason
        assert verdict.passed is False and "does not escalate" in shadow.final_reason
        assert verdict.details["pairwise"] == "original"  # the judge prefers the cheap answer
        assert shadow.final_tier == "mid" and shadow.total_cost > 0
    # the users' answers, tiers and costs are what they were before the shadows ran
    for answer in answers:
        now = after[answer.query_id]
        assert (now.answer, now.final_tier, now.total_cost) == (
            answer.answer,
            answer.final_tier,
            answer.total_cost,
        )
    # the batch's results too, and its spend names what its shadows cost
    assert {r.doc_id: (r.summary, r.final_tier) for r in results_after} == results_before
    doc_shadows = [s for s in shadows if s.shadow_of in documents]
    assert shadow_spent == sum((s.total_cost for s in doc_shadows), Decimal(0)) > 0
    assert spent == shadow_spent + sum((r.cost for r in results_after), Decimal(0))

    # And the report bills the shadows apart and measures the pair cheap -> mid
    report = read_report(engine, "tier", Period(), stack.settings.top_tier)
    own = sum((a.total_cost for a in answers), Decimal(0)) + sum(
        (r.cost for r in results_after), Decimal(0)
    )
    assert report.total.cost == own
    assert report.total.shadow_cost == sum((s.total_cost for s in shadows), Decimal(0))
    [pair] = report.shadow_pairs
    assert (pair.original_tier, pair.shadow_tier, pair.shadows, pair.compared) == (
        "cheap",
        "mid",
        6,
        6,
    )
    assert pair.as_good is not None and pair.as_good.value == 1.0 and pair.as_good.low < 1.0
    assert pair.quality_gain is not None and pair.quality_gain.value < 0
    assert pair.judge_agreement is not None and pair.judge_agreement.value == 1.0

    # And each shadow's answer labels its original's prompt on the shadow's tier
    labelled = {q.id: q for q in Ledger(engine).judged_queries()}
    for answer in answers:
        own, shadowed = labelled[answer.query_id].answers
        assert (own.via, own.tier) == (None, "cheap") and (shadowed.via, shadowed.tier) == (
            "shadow",
            "mid",
        )
        assert shadowed.passed is False

    # And the metrics count shadows apart: not as finished queries, nor in latency
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT metrics.fold()"))
        totals = {
            (r.name, tuple(r.labels)): r.value
            for r in conn.execute(sa.text("SELECT name, labels, value FROM metrics.totals"))
        }
    assert totals[("shadows_finished", ("done", "mid"))] == 6
    assert totals[("shadows_compared", ("cheap", "mid"))] == 6
    assert totals[("shadow_quality_gain", ("cheap", "mid"))] < 0
    finished = sum(v for (name, _), v in totals.items() if name == "queries_finished")
    latency = sum(v for (name, _), v in totals.items() if name == "query_latency_bucket")
    assert finished == latency == 6  # the 4 answers and 2 documents
    engine.dispose()


def test_shadow_sampling_picks_the_configured_share_by_query_id(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a 25% sample towards the top tier
    shadow = {"enabled": True, "share": 0.25, "tier": "top"}
    sampling = running_stack(
        tmp_path, migrated_url, broker_url, cheap_good_mid_bad(), shadow=shadow
    )
    with sampling as (stack, _):
        stack.start_worker("-c", "2")
        engine = sa.create_engine(migrated_url)
        with Client(stack.settings) as client:
            handles = client.submit_many([f"hi {i}" for i in range(40)])
            done = [h.wait(timeout=120) for h in handles]
            sampled = [
                d.query_id for d in done if int(uuid.UUID(str(d.query_id)).hex[:8], 16) < 2**30
            ]
            shadows = shadows_done(engine, expected=len(sampled))
    # Then exactly the sampled queries have a shadow, each on the top tier
    assert 0 < len(sampled) < 40
    assert sorted(str(s.shadow_of) for s in shadows) == sorted(str(q) for q in sampled)
    assert {s.final_tier for s in shadows} == {"frontier"}
    engine.dispose()


def test_a_tier_queue_hands_out_users_hops_before_shadow_hops(broker_url: str) -> None:
    # Given a shadow's call published before a user's, on the same tier queue of real Redis
    settings = Settings(shadow={"enabled": True})
    app = create_app(settings, broker_url)
    publisher = Publisher(app, settings)
    shadow_id, user_id = uuid.uuid4(), uuid.uuid4()
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("tier.mid")
        queue.clear()
        publisher.publish(NextHop(shadow_id, 2, HopKind.CALL, "mid", "m", background=True))
        publisher.publish(NextHop(user_id, 2, HopKind.CALL, "mid", "m"))
        # When a consumer takes the queue's messages
        taken = []
        for _ in range(2):
            message = queue.get(timeout=5)
            args, _kwargs, _embed = message.decode()
            taken.append(uuid.UUID(args[0]))
            message.ack()
        queue.close()
    # Then the user's comes first
    assert taken == [user_id, shadow_id]
