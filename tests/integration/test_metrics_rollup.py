"""The metrics rollup (migration 0005) on a real Postgres: a scrape's work stays flat as the
ledger grows, the incremental totals equal a full replay, TRUNCATE resets them, and the SQL
histogram bounds are the exporter's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from routeq.ledger import Ledger
from routeq.ledger.sql import source
from routeq.metrics import LATENCY_BUCKETS_S, QUERY_LATENCY_BUCKETS_S, read_snapshot

pytestmark = pytest.mark.integration

# Every read a scrape makes, by the names of its .sql files.
SCRAPE_READS = ("metrics_totals", "metrics_oldest_live_hop", "metrics_reconciler")

# A synthetic ledger, four hops per query: route, a call on cheap that fails its judge, an
# escalated call on mid and, with ``judged``, a judge that itself failed and let the answer
# through unjudged. Each call has one or two provider requests (a 429, then an answer).
BULK = """
WITH q AS (
    INSERT INTO queries (id, text, input_tokens, status, final_tier, total_cost, created_at,
                         finished_at)
    SELECT md5(:tag || '-' || i)::uuid, 'bulk ' || i, 10, 'done', 'mid', 0.0003,
           now() - interval '2 seconds', now()
    FROM generate_series(1, :queries) i
    RETURNING id
), h AS (
    INSERT INTO hops (query_id, seq, kind, tier, status, input_tokens, output_tokens, cost,
                      passed, details)
    SELECT q.id, s.seq, s.kind, s.tier, 'done', s.tokens_in, s.tokens_out, s.cost, s.passed,
           CASE WHEN s.seq = 5 THEN '{"source": "judge-error"}'::jsonb
                ELSE '{"source": "llm"}'::jsonb END
    FROM q, (VALUES (1, 'route', 'cheap', NULL::int, NULL::int, 0, NULL::boolean),
                    (2, 'call', 'cheap', 10, 20, 0.0001, NULL),
                    (3, 'judge', 'cheap', NULL, NULL, 0, false),
                    (4, 'call', 'mid', 12, 30, 0.0002, NULL),
                    (5, 'judge', 'mid', NULL, NULL, 0, true))
         AS s (seq, kind, tier, tokens_in, tokens_out, cost, passed)
    WHERE s.seq <= 4 OR :judged
    RETURNING id, kind, tier, input_tokens, output_tokens, cost
)
INSERT INTO provider_requests (hop_id, delivery, try_number, model, outcome, http_status,
                               input_tokens, output_tokens, input_price_per_mtok,
                               output_price_per_mtok, cost, latency_ms)
SELECT h.id, 1, t.try, CASE h.tier WHEN 'cheap' THEN 'sim-small' ELSE 'sim-medium' END,
       t.outcome, t.status, CASE WHEN t.ok THEN h.input_tokens ELSE 0 END,
       CASE WHEN t.ok THEN h.output_tokens ELSE 0 END, 1, 1,
       CASE WHEN t.ok THEN h.cost ELSE 0 END, 40
FROM h, (VALUES (1, 'error', 429, false), (2, 'ok', 200, true)) AS t (try, outcome, status, ok)
WHERE h.kind = 'call' AND (t.try = 2 OR h.tier = 'mid')
"""


@pytest.fixture
def engine(ledger: Ledger) -> Iterator[sa.Engine]:
    """The ledger's engine on emptied tables (the TRUNCATE also reset the rollup)."""
    yield ledger.engine


def bulk_ledger(engine: sa.Engine, hops: int, tag: str) -> None:
    """Insert ``hops`` hops (a quarter as many queries, and their requests), set-based, in
    transactions of at most 4,000 hops with an ANALYZE after each, as autovacuum would keep
    the statistics: one huge transaction on tables analyzed while empty would have every
    per-row lookup (the foreign keys' checks first) planned as a scan of the whole table."""
    queries = hops // 4
    for chunk, start in enumerate(range(0, queries, 1000)):
        with engine.begin() as conn:
            count = min(1000, queries - start)
            conn.execute(sa.text(BULK), {"tag": f"{tag}{chunk}", "queries": count, "judged": False})
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE queries, hops, provider_requests"))
            conn.commit()


def scrape(engine: sa.Engine) -> None:
    read_snapshot(engine, fakeredis.FakeRedis(), [])


def rows_examined(conn: Connection, sql: str) -> int:
    """Rows the plan's scans read (returned or filtered away), from EXPLAIN ANALYZE. Only the
    scans: the nodes above them (an aggregate, a sort, an append) pass the same rows on, in a
    shape the planner picks by its estimates."""
    [[plan]] = conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).all()
    plan = plan if isinstance(plan, list) else json.loads(plan)

    def walk(node: dict[str, Any]) -> int:
        loops = node.get("Actual Loops", 1)
        scanned = node["Node Type"].endswith("Scan") and "Relation Name" in node
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
        return (own if scanned else 0) + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan[0]["Plan"])


def deltas_written(conn: Connection) -> int:
    return int(conn.execute(sa.text("SELECT count(*) FROM metrics.deltas")).scalar_one())


def scrape_work(engine: sa.Engine) -> tuple[int, int]:
    """What one scrape costs: deltas it folds, rows its reads examine (after the fold, as a
    scrape reads)."""
    with engine.begin() as conn:
        pending = deltas_written(conn)
        conn.execute(sa.text(source("metrics_fold")))
        examined = sum(rows_examined(conn, source(name)) for name in SCRAPE_READS)
    return pending, examined


def totals(conn: Connection) -> dict[tuple[str, tuple[str, ...]], Decimal]:
    conn.execute(sa.text("SELECT metrics.fold()"))
    return {
        (name, tuple(labels)): Decimal(value)
        for name, labels, value in conn.execute(sa.text(source("metrics_totals")))
        if value != 0
    }


def test_a_scrape_does_the_same_work_on_100k_hops_as_on_1k(engine: sa.Engine) -> None:
    # Given a ledger of 1,000 hops, scraped once (which folds what the inserts appended)
    bulk_ledger(engine, 1_000, "small")
    scrape(engine)
    # When ten more queries' hops arrive and the next scrape runs
    bulk_ledger(engine, 40, "small-more")
    small = scrape_work(engine)
    scrape(engine)

    # And the same on a ledger grown to 100,000 hops
    bulk_ledger(engine, 99_000, "large")
    scrape(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM hops")).scalar_one() >= 100_000
    bulk_ledger(engine, 40, "large-more")
    large = scrape_work(engine)

    # Then the scrape folds the same number of deltas (the new writes' only) and its reads
    # examine the same number of rows: its cost does not depend on the ledger's size
    assert small == large, (small, large)
    assert large[1] < 200, large  # a few hundred label combinations at most


def test_the_incremental_rollup_equals_a_replay_of_the_rows_and_truncate_resets_it(
    engine: sa.Engine,
) -> None:
    # Given a bulk ledger, then rows that change state one at a time as workers change them
    bulk_ledger(engine, 400, "replay")
    with engine.begin() as conn:
        conn.execute(sa.text(BULK), {"tag": "judged", "queries": 20, "judged": True})
        conn.execute(
            sa.text(
                "UPDATE queries SET status = 'failed', final_tier = NULL "
                "WHERE id IN (SELECT id FROM queries ORDER BY id LIMIT 7)"
            )
        )
        conn.execute(
            sa.text(
                "UPDATE provider_requests SET outcome = 'unknown' "
                "WHERE id IN (SELECT id FROM provider_requests ORDER BY id LIMIT 5)"
            )
        )
        conn.execute(
            sa.text("DELETE FROM queries WHERE id IN (SELECT id FROM queries ORDER BY id LIMIT 3)")
        )
    scrape(engine)
    with engine.connect() as conn:
        incremental = totals(conn)
        # When every current row is replayed from scratch
        conn.execute(sa.text("SELECT metrics.rebuild()"))
        replayed = totals(conn)
        conn.rollback()
    # Then gauges agree exactly; counters agree except for what the deleted queries did
    # (counters remember events, a replay only sees rows that still exist)
    gauges = {"queries", "provider_requests", "batch_documents"}
    assert {k: v for k, v in incremental.items() if k[0] in gauges} == {
        k: v for k, v in replayed.items() if k[0] in gauges
    }
    deleted_hops = 3 * 4
    assert sum(v for k, v in incremental.items() if k[0] == "hops") == (
        sum(v for k, v in replayed.items() if k[0] == "hops") + deleted_hops
    )
    assert incremental[("judge_errors", ("mid", "accepted_unjudged"))] == 20
    assert incremental[("escalations", ("mid",))] == 100 + 20

    # When the tables are truncated (which row triggers do not see)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE queries, hops, provider_requests CASCADE"))
    with engine.connect() as conn:
        # Then the rollup reads zero, not stale counts
        assert totals(conn) == {}


def test_the_sql_histogram_bounds_are_the_exporters(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        for histogram, bounds in (("model", LATENCY_BUCKETS_S), ("query", QUERY_LATENCY_BUCKETS_S)):
            for index, bound in enumerate(bounds):
                at, above = (
                    conn.execute(
                        sa.text("SELECT metrics.bucket(CAST(:s AS numeric), :h)"),
                        {"s": str(seconds), "h": histogram},
                    ).scalar_one()
                    for seconds in (bound, bound + 0.001)
                )
                assert at == f"{bound:g}"
                following = bounds[index + 1] if index + 1 < len(bounds) else None
                assert above == ("+Inf" if following is None else f"{following:g}")


def test_live_states_are_counted_at_the_scrape_and_moving_through_them_writes_no_delta(
    engine: sa.Engine,
) -> None:
    def gauges() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        snapshot = read_snapshot(engine, fakeredis.FakeRedis(), [])
        return (
            {status: n for status, n in snapshot.queries if n},
            {outcome: n for outcome, n in snapshot.requests if n},
            {state: n for state, n in snapshot.batch_documents if n},
        )

    # Given five queued queries, two of them a batch's documents, and a third document rejected
    with engine.begin() as conn:
        ids = [
            conn.execute(
                sa.text(
                    "INSERT INTO queries (id, text, input_tokens, status) "
                    "VALUES (gen_random_uuid(), 'live', 10, 'queued') RETURNING id"
                )
            ).scalar_one()
            for _ in range(5)
        ]
        conn.execute(
            sa.text(
                "INSERT INTO batches (id, name, spec) VALUES (gen_random_uuid(), 'live', '{}');"
            )
        )
        for doc, query_id, rejected in (("a", ids[0], None), ("b", ids[1], None), ("c", None, "x")):
            conn.execute(
                sa.text(
                    "INSERT INTO batch_documents (batch_id, doc_id, source, format, query_id, "
                    "rejected) SELECT id, :doc, 'src', 'text', :query, :rejected FROM batches"
                ),
                {"doc": doc, "query": query_id, "rejected": rejected},
            )
        hop = conn.execute(
            sa.text(
                "INSERT INTO hops (query_id, seq, kind, tier, status) "
                "VALUES (:q, 2, 'call', 'cheap', 'running') RETURNING id"
            ),
            {"q": ids[0]},
        ).scalar_one()
    assert gauges() == ({"queued": 5}, {}, {"queued": 2, "rejected": 1})

    # When two start running and the first sends a request (pending until it answers)
    with engine.begin() as conn:
        written = deltas_written(conn)
        conn.execute(
            sa.text("UPDATE queries SET status = 'running' WHERE id IN (:a, :b)"),
            {"a": ids[0], "b": ids[1]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO provider_requests (hop_id, delivery, try_number, model, outcome, "
                "input_price_per_mtok, output_price_per_mtok) "
                "VALUES (:hop, 1, 1, 'sim-small', 'pending', 1, 1)"
            ),
            {"hop": hop},
        )
    with engine.connect() as conn:
        # Then the rollup was not written to: those are live states
        assert deltas_written(conn) == written
    # And the scrape counts them where they are
    assert gauges() == ({"queued": 3, "running": 2}, {"pending": 1}, {"running": 2, "rejected": 1})

    # When the request answers and its query is done
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE provider_requests SET outcome = 'ok', input_tokens = 10, "
                "output_tokens = 20, cost = 0.00003, latency_ms = 40"
            )
        )
        conn.execute(
            sa.text("UPDATE queries SET status = 'done', finished_at = now() WHERE id = :a"),
            {"a": ids[0]},
        )
    # Then each gauge moved by one, the finished states by way of the rollup
    assert gauges() == (
        {"queued": 3, "running": 1, "done": 1},
        {"ok": 1},
        {"running": 1, "done": 1, "rejected": 1},
    )
    with engine.connect() as conn:
        kept = conn.execute(
            sa.text("SELECT name, labels FROM metrics.totals WHERE value <> 0 ORDER BY 1, 2")
        ).all()
    assert ("queries", ["done"]) in [tuple(row) for row in kept]
    assert not [row for row in kept if row.labels in (["queued"], ["running"], ["pending"])]


def test_a_change_of_amounts_alone_still_reaches_the_rollup(engine: sa.Engine) -> None:
    # (the rollup's triggers fire only for changes their delta functions count: these are the
    # ones that move no status)
    def total(name: str, labels: tuple[str, ...] = ()) -> Decimal:
        with engine.connect() as conn:
            return totals(conn).get((name, labels), Decimal(0))

    # Given a done query whose call kept an answer (so it has a top-tier counterfactual)
    with engine.begin() as conn:
        query_id = conn.execute(
            sa.text(
                "INSERT INTO queries (id, text, input_tokens, status, total_cost, finished_at) "
                "VALUES (gen_random_uuid(), 'amounts', 10, 'running', 0.001, now()) RETURNING id"
            )
        ).scalar_one()
        hop = conn.execute(
            sa.text(
                "INSERT INTO hops (query_id, seq, kind, tier, status, input_tokens, "
                "output_tokens) VALUES (:q, 2, 'call', 'cheap', 'done', 10, 20) RETURNING id"
            ),
            {"q": query_id},
        ).scalar_one()
        conn.execute(sa.text("UPDATE queries SET status = 'done' WHERE id = :q"), {"q": query_id})
    assert total("comparable_cost") == Decimal("0.001")

    # When a late request of that call adds to the done query's cost, and a request is
    # recorded pending with tokens counted already
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE queries SET total_cost = total_cost + 0.002 WHERE id = :q"),
            {"q": query_id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO provider_requests (hop_id, delivery, try_number, model, outcome, "
                "input_tokens, input_price_per_mtok, output_price_per_mtok, cost) "
                "VALUES (:hop, 1, 1, 'sim-small', 'pending', 7, 1, 1, 0.0005)"
            ),
            {"hop": hop},
        )

    # Then the rollup has both amounts
    assert total("comparable_cost") == Decimal("0.003")
    assert total("tokens", ("call", "cheap", "input")) == 7
    assert total("cost_usd", ("call", "cheap", "sim-small")) == Decimal("0.0005")
