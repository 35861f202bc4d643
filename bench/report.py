"""How long ``routeq report`` takes on a ledger of a million hops.

    .venv/bin/python bench/report.py [--hops 1000000] [--admin-url URL] [--out bench/report]

Creates a scratch database (``routeq_bench_report``, dropped at the end), migrates it, and
fills it set-based with a synthetic ledger: a quarter as many queries as hops, each a route
hop, a call on a tier (cheap, mid or frontier by the query's number), a judge hop, and for a
third of them an escalated call; one or two provider requests per call; users, tags, days and
two policy versions spread over the queries; a thumbs-down on one query in fifty; a shadow
(route, call and judge on the top tier, with a pairwise verdict) for about 5% of the answers
kept below the top tier, as ``[shadow] share = 0.05`` would make. The metrics
triggers are switched off while loading (``session_replication_role = replica``: the rollup is
not what is measured) and the tables are analysed, as autovacuum would. Then every grouping of
the report, and the HTML page (the tier report and its plots' series), is timed over the whole
ledger and over its last day, three runs each (median reported), and written to ``OUT.json``
and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from routeq.config import Settings
from routeq.html_report import read_plot_data
from routeq.ledger import make_engine
from routeq.ledger.migrate import upgrade
from routeq.traffic_report import GROUPINGS, Period, read_report

DATABASE = "routeq_bench_report"

LOAD = """
WITH q AS (
    INSERT INTO queries (id, text, input_tokens, status, final_tier, final_model, total_cost,
                         user_id, metadata, created_at, finished_at)
    SELECT md5('bench-' || i)::uuid, 'bench query ' || i, 40, 'done',
           (ARRAY['cheap', 'mid', 'frontier'])[1 + i % 3 + (i % 3 < 2 AND i % 5 = 0)::int],
           'model-' || (i % 3), 0.0003, 'user-' || (i % 500),
           jsonb_build_object('tag', (ARRAY['support', 'search', 'code', 'chat'])[1 + i % 4]),
           now() - make_interval(secs => i * 2592.0 * 1000 / CAST(:queries AS int)),
           now() - make_interval(secs => i * 2592.0 * 1000 / CAST(:queries AS int)) + interval '3 s'
    FROM generate_series(CAST(:start AS int), CAST(:stop AS int)) i
    RETURNING id, final_tier
), h AS (
    INSERT INTO hops (query_id, seq, kind, tier, status, input_tokens, output_tokens, cost,
                      latency_ms, passed, judge_score, policy, policy_version, details)
    SELECT q.id, s.seq, s.kind,
           CASE WHEN s.seq = 4 THEN q.final_tier
                ELSE (ARRAY['cheap', 'mid'])[1 + get_byte(decode(md5(q.id::text), 'hex'), 1) % 2]
           END,
           'done', s.tokens, s.tokens, s.cost, s.latency, s.passed, s.score,
           CASE WHEN s.seq = 1 THEN 'expected-gain' END,
           CASE WHEN s.seq = 1
           THEN (ARRAY['a1b2c3', 'd4e5f6'])[1 + get_byte(decode(md5(q.id::text), 'hex'), 0) % 2]
           END,
           '{"source": "llm"}'::jsonb
    FROM q, (VALUES (1, 'route', NULL::int, 0, NULL::int, NULL::boolean, NULL::numeric),
                    (2, 'call', 30, 0.0001, 400, NULL, NULL),
                    (3, 'judge', 10, 0.00005, 200, true, 8),
                    (4, 'call', 30, 0.0002, 900, NULL, NULL))
         AS s (seq, kind, tokens, cost, latency, passed, score)
    RETURNING id, kind, tier, input_tokens, output_tokens, cost
)
INSERT INTO provider_requests (hop_id, delivery, try_number, model, outcome, http_status,
                               input_tokens, output_tokens, input_price_per_mtok,
                               output_price_per_mtok, cost, latency_ms)
SELECT h.id, 1, 1, 'model', 'ok', 200, h.input_tokens, h.output_tokens, 1, 1, h.cost, 400
FROM h WHERE h.kind IN ('call', 'judge')
"""

SHADOWS = """
WITH s AS (
    INSERT INTO queries (id, text, input_tokens, status, final_tier, final_model, total_cost,
                         role, shadow_of, created_at, finished_at)
    SELECT md5('shadow-' || o.id)::uuid, o.text, 40, 'done', 'frontier', 'model-2', 0.0004,
           'shadow', o.id, o.finished_at, o.finished_at + interval '4 s'
    FROM queries o
    WHERE o.role = 'answer' AND o.final_tier <> 'frontier'
      AND get_byte(decode(md5(o.id::text), 'hex'), 2) < 13  -- about 5% of them
    RETURNING id
), h AS (
    INSERT INTO hops (query_id, seq, kind, tier, status, input_tokens, output_tokens, cost,
                      latency_ms, passed, judge_score, details)
    SELECT s.id, v.seq, v.kind, 'frontier', 'done', v.tokens, v.tokens, v.cost, v.latency,
           v.passed, v.score,
           CASE WHEN v.kind = 'judge' THEN '{"source": "llm", "pairwise": "shadow"}'::jsonb
                ELSE '{}'::jsonb END
    FROM s, (VALUES (1, 'route', NULL::int, 0, NULL::int, NULL::boolean, NULL::numeric),
                    (2, 'call', 30, 0.0003, 900, NULL, NULL),
                    (3, 'judge', 10, 0.00005, 200, true, 9)) AS v (seq, kind, tokens, cost,
                                                                  latency, passed, score)
    RETURNING id, kind, input_tokens, output_tokens, cost
)
INSERT INTO provider_requests (hop_id, delivery, try_number, model, outcome, http_status,
                               input_tokens, output_tokens, input_price_per_mtok,
                               output_price_per_mtok, cost, latency_ms)
SELECT h.id, 1, 1, 'model', 'ok', 200, h.input_tokens, h.output_tokens, 1, 1, h.cost, 400
FROM h WHERE h.kind IN ('call', 'judge')
"""

FEEDBACK = """
INSERT INTO feedback (query_id, thumbs_down, tier)
SELECT md5('bench-' || i)::uuid, true, 'cheap' FROM generate_series(1, CAST(:queries AS int), 50) i
"""


def scratch_database(admin_url: str, name: str = DATABASE) -> str:
    """Create database ``name`` empty (dropping what was there) and return its URL (the other
    benches' scratch databases are made here too)."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop(admin_url: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()


def load(engine: sa.Engine, hops: int) -> dict[str, Any]:
    queries = hops // 4
    started = time.perf_counter()
    step = 50_000
    for start in range(1, queries + 1, step):
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            stop = min(queries, start + step - 1)
            conn.execute(sa.text(LOAD), {"start": start, "stop": stop, "queries": queries})
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text(FEEDBACK), {"queries": queries})
        conn.execute(sa.text(SHADOWS))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        counted = {
            table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("queries", "hops", "provider_requests", "feedback")
        }
        counted["shadows"] = int(
            conn.execute(sa.text("SELECT count(*) FROM queries WHERE role = 'shadow'")).scalar_one()
        )
    return {"rows": counted, "load_s": round(time.perf_counter() - started, 1)}


def timed(engine: sa.Engine, by: str, period: Period, runs: int = 3) -> dict[str, Any]:
    """``by`` is a grouping, or "html": the tier report and the HTML page's plot series."""
    top = Settings().top_tier
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        report = read_report(engine, "tier" if by == "html" else by, period, top)  # type: ignore[arg-type]
        if by == "html":
            read_plot_data(engine, period)
        seconds.append(time.perf_counter() - started)
    return {
        "by": by,
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
        "groups": len(report.groups),
        "queries": report.total.queries,
    }


def render(result: dict[str, Any]) -> str:
    rows = result["load"]["rows"]
    lines = [
        "# `routeq report` on a ledger of a million hops",
        "",
        "Generated by `bench/report.py`; reproduce with",
        "",
        f"    .venv/bin/python bench/report.py --hops {result['hops']} --out bench/report",
        "",
        f"Machine: {result['machine']}. Ledger: {rows['queries']:,} queries, {rows['hops']:,} "
        f"hops, {rows['provider_requests']:,} provider requests, {rows['feedback']:,} feedback "
        f"rows, {rows['shadows']:,} of the queries shadows, spread over 30 days (loaded in "
        f"{result['load']['load_s']} s). Median of 3 runs "
        "of `routeq.traffic_report.read_report` (the SQL and the arithmetic; the CLI adds about "
        "1 s of Python start-up).",
        "",
    ]
    for scope, title in (("all", "whole ledger (30 days)"), ("day", "last day")):
        lines += [f"## {title}", "", "| --by | groups | queries | median s | max s |"]
        lines += ["|---|---|---|---|---|"]
        for row in result[scope]:
            lines.append(
                f"| {row['by']} | {row['groups']} | {row['queries']:,} | {row['median_s']} | "
                f"{row['max_s']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hops", type=int, default=1_000_000)
    parser.add_argument(
        "--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/report"))
    args = parser.parse_args()
    url = scratch_database(args.admin_url)
    try:
        upgrade(url)
        engine = make_engine(url)
        loaded = load(engine, args.hops)
        with engine.connect() as conn:
            newest = conn.execute(sa.text("SELECT max(created_at) FROM queries")).scalar_one()
        last_day = Period(since=newest - timedelta(days=1))
        result = {
            "hops": args.hops,
            "machine": f"{platform.machine()}, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores",
            "load": loaded,
            "all": [timed(engine, by, Period()) for by in (*GROUPINGS, "html")],
            "day": [timed(engine, by, last_day) for by in (*GROUPINGS, "html")],
        }
        engine.dispose()
    finally:
        drop(args.admin_url)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
