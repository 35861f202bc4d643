"""Metrics, batch totals, the demo's totals and the reporting views agree, on a ledger written
by a real pipeline run (worker processes, Redis, Postgres, a flaky simulated ladder), and all of
them agree with the same numbers counted in Python from the raw ledger rows."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa
from audit import ledger_rows
from stack import running_stack, sim_config

from routeq import Client
from routeq.batch.report import batch_totals
from routeq.ledger.sql import source
from routeq.metrics import read_snapshot
from routeq.pricing import counterfactual_cost
from routeq.report import query_totals
from routeq.sim import SimModel
from routeq.summary_spec import SummarySpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "hello",
    "What is the boiling point of water at altitude?",
    "Write Python code that merges two sorted lists.",
    "Explain how HTTP caching headers interact with CDNs.",
    "How should I structure a weekly team meeting?",
]


def flaky_ladder() -> Any:
    """Bad cheap answers (escalations), 500s on cheap, 429s on mid, and a judge that fails
    often enough that some answers are accepted unjudged (fail open)."""
    return sim_config(
        **{
            "sim-small": SimModel(
                "sim-small", quality=0.45, latency_ms=3, output_tokens=40, fault_500=0.1
            ),
            "sim-medium": SimModel(
                "sim-medium",
                quality=0.7,
                latency_ms=3,
                output_tokens=60,
                fault_429=0.2,
                retry_after_s=0.01,
            ),
            "sim-judge": SimModel(
                "sim-judge", quality=1.0, latency_ms=1, output_tokens=20, judge=True, fault_500=0.6
            ),
        }
    )


def corpus(tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "make_corpus.py"),
            *("--out", str(out), "--docs", "8", "--long", "1", "--seed", "5"),
        ],
        check=True,
        capture_output=True,
    )
    return out


class Oracle:
    """The reports' numbers, counted from raw rows with none of the views' SQL."""

    def __init__(self, database_url: str) -> None:
        self.queries, self.hops, self.requests = ledger_rows(database_url)

    def calls(self, query_id: Any) -> list[Any]:
        return [h for h in self.hops[query_id] if h.kind == "call"]

    def escalations(self, query_id: Any) -> list[str]:
        """Tiers a query escalated into: each call tier not seen before, after the first."""
        seen: list[str] = []
        for hop in self.calls(query_id):
            if hop.tier not in seen:
                seen.append(hop.tier)
        return seen[1:]

    def escalated(self, query_id: Any) -> bool:
        return bool(self.escalations(query_id))

    def accepted_call(self, query_id: Any) -> Any:
        done = [h for h in self.calls(query_id) if h.status == "done"]
        return done[-1] if done and self.queries[query_id].status == "done" else None

    def counterfactual(self, query_ids: list[Any]) -> tuple[int, int, Decimal]:
        """Tokens of the accepted calls, and what those queries cost."""
        tokens_in = tokens_out = 0
        cost = Decimal(0)
        for query_id in query_ids:
            call = self.accepted_call(query_id)
            if call is not None:
                tokens_in += call.input_tokens or 0
                tokens_out += call.output_tokens or 0
                cost += self.queries[query_id].total_cost
        return tokens_in, tokens_out, cost

    def request_rows(self) -> list[tuple[Any, Any]]:
        by_id = {h.id: h for hops in self.hops.values() for h in hops}
        return [(by_id[hop_id], r) for hop_id, rows in self.requests.items() for r in rows]


def test_metrics_batch_totals_demo_totals_and_views_agree_on_a_real_run(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a real run: 40 questions and a batch with a document split into parts
    documents = corpus(tmp_path)
    with running_stack(tmp_path, migrated_url, broker_url, flaky_ladder()) as (stack, _):
        stack.start_worker("-c", "4")
        with Client(stack.settings) as client:
            handles = client.submit_many(
                [f"{QUESTIONS[i % len(QUESTIONS)]} (case {i})" for i in range(40)]
            )
            results = [handle.wait(timeout=240) for handle in handles]
            batch = client.submit_batch([documents], name="agreement")
            batch.wait(timeout=300)
            docs = batch.results()
            spec = SummarySpec.model_validate(client.batches.find(batch.id).spec)
            spent = client.batches.spent(batch.id)
    settings = stack.settings
    top = settings.top_tier
    engine = sa.create_engine(migrated_url)
    snapshot = read_snapshot(engine, fakeredis.FakeRedis(), [], settings)
    totals = batch_totals(docs, top, spec, spent)
    ids = [result.query_id for result in results]
    demo = query_totals(engine, ids, top)
    oracle = Oracle(migrated_url)
    assert any(doc.parts for doc in docs), "the corpus must hold a split document"

    # Then escalations: metrics, the view and the raw rows say the same, and some happened
    expected = Counter(t for q in oracle.queries for t in oracle.escalations(q))
    assert sum(expected.values()) > 0
    assert {t: n for t, n in snapshot.escalations if n} == dict(expected)
    with engine.connect() as conn:
        by_view = dict(
            conn.execute(sa.text("SELECT to_tier, count(*) FROM escalations GROUP BY 1")).all()
        )
        journeys = {
            row.query_id: row for row in conn.execute(sa.text("SELECT * FROM query_journeys"))
        }
        spend = conn.execute(
            sa.text(
                "SELECT sum(cost), sum(errors), sum(rate_limited), sum(input_tokens), "
                "sum(output_tokens) FROM spend_daily"
            )
        ).one()
        counterfactual = conn.execute(
            sa.text(
                "SELECT sum(input_tokens), sum(output_tokens), sum(cost) "
                "FROM top_tier_counterfactual"
            )
        ).one()
        batch_view = conn.execute(
            sa.text(
                "SELECT sum(spent) FILTER (WHERE status = 'done' AND NOT reused), "
                "count(*) FILTER (WHERE status = 'done' AND escalated), "
                "sum(top_tier_input_tokens) FILTER (WHERE status = 'done' AND NOT reused), "
                "sum(top_tier_output_tokens) FILTER (WHERE status = 'done' AND NOT reused) "
                "FROM batch_document_spend WHERE batch_id = :b"
            ),
            {"b": batch.id},
        ).one()
        batch_spent = conn.execute(sa.text(source("batch_spend")), {"batch_id": batch.id}).scalar()
    assert by_view == dict(expected)
    for query_id, row in journeys.items():
        assert row.escalations == len(oracle.escalations(query_id))
        assert row.tier_path == [h.tier for h in oracle.calls(query_id)]

    # And spend, errors, 429s and tokens (every attempt, failed ones included)
    pairs = oracle.request_rows()
    cost = sum((r.cost for _, r in pairs), Decimal(0))
    rate_limited = Counter((h.kind, h.tier, r.model) for h, r in pairs if r.http_status == 429)
    errors = Counter(
        (h.kind, h.tier, r.model, str(r.http_status or "none"))
        for h, r in pairs
        if r.outcome == "error"
    )
    assert sum(rate_limited.values()) > 0 and sum(errors.values()) > sum(rate_limited.values())
    assert spend[0] == cost == sum(q.total_cost for q in oracle.queries.values())
    assert (spend[1], spend[2]) == (sum(errors.values()), sum(rate_limited.values()))
    assert sum((c for _, _, c in snapshot.cost), Decimal(0)) == cost
    assert {(k, t, m, s): n for k, t, m, s, n in snapshot.provider_errors if n} == dict(errors)
    tokens: dict[tuple[str, str, str], int] = defaultdict(int)
    for hop, request in pairs:
        tokens[(hop.kind, hop.tier, "input")] += request.input_tokens
        tokens[(hop.kind, hop.tier, "output")] += request.output_tokens
    assert {(k, t, d): n for k, t, d, n in snapshot.tokens if n} == {
        key: n for key, n in tokens.items() if n
    }
    assert (spend[3], spend[4]) == (
        sum(r.input_tokens for _, r in pairs),
        sum(r.output_tokens for _, r in pairs),
    )

    # And judge failures: answers accepted unjudged are counted, per tier judged
    unjudged = Counter(
        (h.tier, "accepted_unjudged" if h.passed else "failed_closed")
        for hops in oracle.hops.values()
        for h in hops
        if h.kind == "judge" and h.status == "done" and h.details.get("source") == "judge-error"
    )
    assert sum(unjudged.values()) > 0
    assert {(t, o): n for t, o, n in snapshot.judge_errors if n} == dict(unjudged)

    # And finished queries, end-to-end latency counts
    finished = Counter(
        (q.status, q.final_tier or "")
        for q in oracle.queries.values()
        if q.status in ("done", "failed")
    )
    assert {(s, t): n for s, t, n in snapshot.finished if n} == dict(finished)
    top_level = Counter(
        q.status
        for q in oracle.queries.values()
        if q.parent_id is None and q.status in ("done", "failed")
    )
    assert {row.status: row.count for row in snapshot.query_latency if row.count} == dict(top_level)

    # And the all-top-tier counterfactual: view, metrics and the raw rows
    tokens_in, tokens_out, compared = oracle.counterfactual(list(oracle.queries))
    assert tuple(counterfactual) == (tokens_in, tokens_out, compared)
    assert snapshot.savings is not None
    assert snapshot.savings.counterfactual == counterfactual_cost(top, tokens_in, tokens_out)
    assert snapshot.savings.actual == compared

    # And the batch totals are the views' numbers, and the raw rows'
    def family(root: Any) -> list[Any]:
        return [root] + [q.id for q in oracle.queries.values() if q.parent_id == root]

    own = [d for d in docs if d.status == "done" and not d.reused]
    family_in = family_out = 0
    for doc in own:
        fin, fout, _ = oracle.counterfactual(family(doc.query_id))
        family_in, family_out = family_in + fin, family_out + fout
    assert (
        totals.cost
        == batch_spent
        == spent
        == sum(q.total_cost for q in oracle.queries.values() if q.batch_document_id is not None)
    )
    assert totals.done_cost == batch_view[0]
    assert (
        totals.escalated
        == batch_view[1]
        == sum(
            any(oracle.escalated(q) for q in family(d.query_id)) for d in docs if d.status == "done"
        )
    )
    assert (batch_view[2], batch_view[3]) == (family_in, family_out)
    assert totals.top_tier_estimate == counterfactual_cost(top, family_in, family_out)

    # And the demo's totals over the 40 questions
    assert demo.queries == 40 and demo.done == sum(r.ok for r in results)
    assert demo.escalated == sum(oracle.escalated(q) for q in ids)
    assert demo.cost == sum((oracle.queries[q].total_cost for q in ids), Decimal(0))
    q_in, q_out, q_cost = oracle.counterfactual(ids)
    assert (demo.compared_cost, demo.counterfactual) == (
        q_cost,
        counterfactual_cost(top, q_in, q_out),
    )

    # And the incremental rollup equals a replay of every row (the triggers kept up with
    # concurrent workers): checked in a transaction that is rolled back
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT metrics.fold()"))
        incremental = conn.execute(sa.text(source("metrics_totals"))).all()
        conn.execute(sa.text("SELECT metrics.rebuild()"))
        conn.execute(sa.text("SELECT metrics.fold()"))
        replayed = conn.execute(sa.text(source("metrics_totals"))).all()
        conn.rollback()
    engine.dispose()

    def nonzero(rows: list[Any]) -> dict[Any, Decimal]:
        return {(r.name, tuple(r.labels)): Decimal(r.value) for r in rows if r.value != 0}

    assert nonzero(incremental) == nonzero(replayed)
