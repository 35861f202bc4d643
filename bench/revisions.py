"""Postgres's CPU and the time per query on the in-process pipeline, at two ledger schema revisions.

    .venv/bin/python bench/revisions.py 0018 head
    .venv/bin/python bench/revisions.py 0018 head --rounds 16 --batch 60

What a migration changes on the database side (triggers, constraints, functions) is small next
to this machine's drift over minutes, so a run before and a run after cannot tell it apart. This
bench migrates one scratch database per revision (``routeq_bench_rev_<n>``) and runs the workers'
step functions on each (``routeq.pipeline.InProcessPipeline``, zero-latency simulated model),
alternating batches of queries between them, and reading the backend's CPU time from
``/proc/<pid>/stat`` before and after each batch. It prints the medians per query: the backend's
CPU (at the kernel's clock tick, so read the medians of many batches) and the wall time of the
whole pipeline (the client's work, the model server and Postgres). Run it on the machine that
runs Postgres, one bench at a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf
import report

from routeq import pipeline
from routeq.ledger import Ledger, make_engine
from routeq.ledger.migrate import upgrade


@dataclass
class Arm:
    """One revision's database and pipeline, and what its batches measured."""

    revision: str
    engine: sa.Engine
    run: pipeline.InProcessPipeline
    backend_pid: int
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process (this machine's Postgres backends are local)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _arm(bench: perf.Bench, index: int, revision: str) -> Arm:
    url = report.scratch_database(bench.admin_url, f"routeq_bench_rev_{index}")
    upgrade(url, revision)
    assert bench.settings is not None
    engine = make_engine(url, pool_size=1, pre_ping=False)  # as workers build it
    run = pipeline.InProcessPipeline(
        bench.settings.model_copy(update={"database_url": url}), Ledger(engine)
    )
    run.__enter__()
    run.submit(["warm up"] * 20)  # prepared statements, caches, the first pages
    run.run()
    with engine.connect() as conn:
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    return Arm(revision, engine, run, pid)


def _batch(arm: Arm, queries: int) -> None:
    cpu, started = _cpu_s(arm.backend_pid), time.perf_counter()
    arm.run.submit([f"What is {n} squared?" for n in range(queries)])
    arm.run.run()
    arm.wall_ms.append((time.perf_counter() - started) * 1000 / queries)
    arm.cpu_ms.append((_cpu_s(arm.backend_pid) - cpu) * 1000 / queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs=2, help="two migration revisions, e.g. 0018 head")
    parser.add_argument(
        "--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--batch", type=int, default=60, help="queries per batch")
    args = parser.parse_args()
    bench = perf.Bench(args.admin_url, args.redis_url, 0.0, Path(tempfile.mkdtemp()))
    arms: list[Arm] = []
    try:
        bench.setup()
        bench.configure(perf.FAST)
        arms = [_arm(bench, i, revision) for i, revision in enumerate(args.revisions)]
        for round_ in range(args.rounds):
            for arm in arms if round_ % 2 == 0 else arms[::-1]:
                _batch(arm, args.batch)
    finally:
        for arm in arms:
            arm.run.__exit__(None, None, None)
            arm.engine.dispose()
        bench.teardown()
    print(f"\n{args.rounds} batches of {args.batch} queries per revision, alternating\n")
    print("| revision | Postgres CPU ms / query | wall ms / query |")
    print("|---|---|---|")
    for arm in arms:
        cpu, wall = statistics.median(arm.cpu_ms), statistics.median(arm.wall_ms)
        print(f"| {arm.revision} | {cpu:.2f} | {wall:.2f} |")


if __name__ == "__main__":
    main()
