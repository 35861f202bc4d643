"""What routeq costs next to the models it routes to, against a bare Celery pipeline.

    .venv/bin/python bench/perf.py [--quick] [--only overhead,throughput,...] [--out bench/perf]

Every figure is measured in the same run as its baseline, interleaved, on the same Redis and
Postgres (a scratch database ``routeq_bench_perf`` and Redis db 11, both emptied first), and
printed as a table with min and median over repetitions; ``OUT.json`` holds every sample. These
machines are noisy: the ratios are what count. The baseline is ``bench/bare_celery.py``: three
tasks on three queues, acks late, prefetch 1, one Postgres commit per hop.

Sections (``--only``):

- ``overhead``: one query at a time through route -> call -> judge with a fixed-latency
  simulated model (``--model-ms``), from the query row's creation to its completion on the
  database's clock, minus the model's latency; p50/p95/p99 for routeq, the bare chain and a
  direct httpx call to the same model, queries of the three interleaved.
- ``throughput``: ``--queries`` submitted at once with a zero-latency model, for each pool
  (prefork 1, 2 and 4 processes; threads 4), routeq and the bare chain alternating. Also
  counted over the same run: Postgres transactions per query (``pg_stat_database``), WAL
  flushes per query (``pg_stat_wal``), Redis commands per query (``INFO commandstats``) and
  machine CPU per query (``/proc/stat``; it includes the simulated model server, the same for
  both).
- ``counts``: SQL round trips, transactions and durable commits of each hop, counted (not
  timed) on the in-process pipeline, which runs the workers' step functions on the same ledger.
- ``submit``: ``Client.submit_many`` of 1,000 and 10,000 queries against the bare chain's
  multi-row INSERT and publish loop.
- ``summarize``: documents per second through batch summarization.
- ``policies``: decision latency of the routing policies that need no trained artifact.
- ``ledger``: the metrics scrape and ``routeq report`` on ledgers of 1k, 100k and 1M hops
  (``bench/report.py``'s synthetic rows, in a scratch database of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_celery
import report as report_bench

from routeq.client import Client
from routeq.config import JudgeConfig, Settings, TierConfig, write_config
from routeq.ledger import Ledger, make_engine
from routeq.ledger.migrate import upgrade

DATABASE = "routeq_bench_perf"
SLOW, FAST = "sim-bench", "sim-zero"
POOLS = (("prefork", 1), ("prefork", 2), ("prefork", 4), ("threads", 4))
FINAL = ("done", "failed")


# -- the stack -----------------------------------------------------------------------------------


@dataclass
class Bench:
    """The scratch database, Redis db, simulated model server and configs of one run."""

    admin_url: str
    redis_url: str
    model_ms: float
    workdir: Path
    database_url: str = ""
    sim_url: str = ""
    config_path: Path = Path()
    settings: Settings | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0  # worker groups started so far: each gets a log of its own

    def setup(self) -> None:
        self.database_url = report_bench.scratch_database(self.admin_url, DATABASE)
        upgrade(self.database_url)
        bare_celery.create_table(self.plain_url)
        redis.Redis.from_url(self.redis_url).flushdb()
        self._start_sim()

    @property
    def plain_url(self) -> str:
        """The database URL for psycopg (no SQLAlchemy driver suffix)."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://")

    def _start_sim(self) -> None:
        port = _free_port()
        sim = self.workdir / "sim.toml"
        sim.write_text(
            "seed = 1\n"
            f"[models.{SLOW}]\nquality = 1.0\nlatency_ms = {self.model_ms}\noutput_tokens = 40\n"
            f"[models.{FAST}]\nquality = 1.0\nlatency_ms = 0\noutput_tokens = 40\n"
        )
        self.sim_url = f"http://127.0.0.1:{port}/v1"
        self._spawn(
            [
                sys.executable,
                "-m",
                "routeq",
                "sim-server",
                "--port",
                str(port),
                "--config",
                str(sim),
            ],
            self.workdir / "sim.log",
            os.environ.copy(),
        )
        _wait(lambda: _connects(port), 20, "the simulated model server")

    def configure(self, model: str) -> None:
        """One tier on ``model``, heuristic judging (no judge model): route -> call -> judge."""
        self.settings = Settings(
            tiers=[
                TierConfig(
                    name="cheap",
                    provider="openai",
                    base_url=self.sim_url,
                    model=model,
                    input_price_per_mtok=Decimal("0.15"),
                    output_price_per_mtok=Decimal("0.60"),
                    timeout_s=30,
                    max_concurrency=64,
                    context_window=16000,
                )
            ],
            judge=JudgeConfig(model=None),
            database_url=self.database_url,
            broker_url=self.redis_url,
            state_dir=self.workdir / "state",
        )
        self.config_path = write_config(self.settings, self.workdir / "routeq.toml")
        self.model = model

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            ROUTEQ_CONFIG=str(self.config_path),
            ROUTEQ_DATABASE_URL=self.database_url,
            ROUTEQ_BROKER_URL=self.redis_url,
            BARE_BROKER_URL=self.redis_url,
            BARE_DATABASE_URL=self.plain_url,
            BARE_MODEL_URL=self.sim_url,
            BARE_MODEL=self.model,
        )

    @contextmanager
    def workers(self, system: str, pool: str, concurrency: int) -> Iterator[None]:
        """Worker processes of ``system`` (routeq or bare), waited on until ready."""
        self.started += 1
        log = self.workdir / f"{self.started:02d}-{system}-{pool}-{concurrency}.log"
        common = ["--pool", pool, "-c", str(concurrency), "--loglevel", "info"]
        if system == "routeq":
            args = [sys.executable, "-m", "routeq", "worker", "--no-supervise", *common]
        else:
            args = [sys.executable, str(Path(bare_celery.__file__)), "worker", *common]
        process = self._spawn(args, log, self.env())
        _wait(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 60, system)
        if process.poll() is not None:
            raise RuntimeError(f"{system} worker exited:\n{log.read_text()[-2000:]}")
        try:
            yield
        finally:
            _stop(process)
            self.processes.remove(process)

    def _spawn(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def teardown(self) -> None:
        for process in list(self.processes):
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connects(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready in {timeout:.0f} s")
        time.sleep(every)


# -- counters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of the machine and the services, read before and after a run."""

    xacts: int
    wal_syncs: int
    redis_calls: int
    cpu_jiffies: int

    @staticmethod
    def read(db: psycopg.Connection[Any], redis_client: redis.Redis) -> Counters:
        xacts = db.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (DATABASE,),
        ).fetchone()
        wal = db.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
        stats = redis_client.info("commandstats")
        calls = sum(int(entry["calls"]) for entry in stats.values())
        with open("/proc/stat") as proc:
            fields = [int(value) for value in proc.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        assert xacts is not None and wal is not None
        return Counters(int(xacts[0]), int(wal[0]), calls, busy)


def _per_query(before: Counters, after: Counters, queries: int, own_xacts: int) -> dict[str, float]:
    hz = os.sysconf("SC_CLK_TCK")
    return {
        "transactions_per_query": (after.xacts - before.xacts - own_xacts) / queries,
        "wal_syncs_per_query": (after.wal_syncs - before.wal_syncs) / queries,
        # INFO itself is one command, and the producer's pushes are included (as they should).
        "redis_commands_per_query": (after.redis_calls - before.redis_calls - 1) / queries,
        "cpu_ms_per_query": (after.cpu_jiffies - before.cpu_jiffies) * 1000 / hz / queries,
    }


# -- overhead ------------------------------------------------------------------------------------


def overhead(bench: Bench, queries: int) -> dict[str, Any]:
    """Latency beyond the model's, one query in flight, the three kinds interleaved."""
    bench.configure(SLOW)
    assert bench.settings is not None
    samples: dict[str, list[float]] = {"routeq": [], "bare": [], "httpx": []}
    ids: dict[str, list[uuid.UUID]] = {"routeq": [], "bare": []}
    db = psycopg.connect(bench.plain_url, autocommit=True)
    http = httpx.Client()
    with (
        bench.workers("routeq", "prefork", 2),
        bench.workers("bare", "prefork", 2),
        Client(bench.settings) as client,
    ):
        # Warm both: first deliveries load code and open pools, in every pool process and step.
        for _ in range(10):
            _routeq_one(client, db)
            _bare_one(bench, db)
        for n in range(queries):
            for kind, (ms, query_id) in (
                ("routeq", _routeq_one(client, db)),
                ("bare", _bare_one(bench, db)),
            ):
                samples[kind].append(ms - bench.model_ms)
                ids[kind].append(query_id)
            samples["httpx"].append(_httpx_one(bench, http, n) - bench.model_ms)
    breakdown = {
        kind: _breakdown(db, kind, kind_ids, bench.model_ms) for kind, kind_ids in ids.items()
    }
    db.close()
    http.close()
    result: dict[str, Any] = {
        kind: _percentiles(values) | {"samples": values} for kind, values in samples.items()
    }
    return result | {"breakdown_ms": breakdown}


def _routeq_one(client: Client, db: psycopg.Connection[Any]) -> tuple[float, uuid.UUID]:
    query_id = client.submit("What is the capital of France?").query_id
    return _poll_latency(db, "queries", query_id), query_id


def _bare_one(bench: Bench, db: psycopg.Connection[Any]) -> tuple[float, uuid.UUID]:
    (query_id,) = bare_celery.submit(bench.plain_url, ["What is the capital of France?"])
    return _poll_latency(db, "bare_queries", query_id), query_id


# Where one query's time went, from the timestamps each system writes (medians, ms). routeq's
# are the ledger's statement times: a hop's start is its claim, its end its finish, so the gap
# from one hop's end to the next one's start holds the finish's execution and commit, the
# publish, the broker, the next worker's pickup and the claim's BEGIN. The bare chain stamps
# each task's one UPDATE, so each of its gaps holds a whole task. The model's latency is taken
# off the gap that holds the call.
_BREAKDOWN = {
    "routeq": """
        SELECT 1000 * extract(epoch FROM r.started_at - q.created_at) AS submit_to_route,
               1000 * extract(epoch FROM r.finished_at - r.started_at) AS route_step,
               1000 * extract(epoch FROM c.started_at - r.finished_at) AS route_to_call,
               1000 * extract(epoch FROM c.finished_at - c.started_at) - %(model_ms)s
                   AS call_step_beyond_model,
               1000 * extract(epoch FROM j.started_at - c.finished_at) AS call_to_judge,
               1000 * extract(epoch FROM q.finished_at - j.started_at) AS judge_step
        FROM queries q
        JOIN hops r ON r.query_id = q.id AND r.seq = 1
        JOIN hops c ON c.query_id = q.id AND c.seq = 2
        JOIN hops j ON j.query_id = q.id AND j.seq = 3
        WHERE q.id = ANY(%(ids)s)
    """,
    "bare": """
        SELECT 1000 * extract(epoch FROM routed_at - created_at) AS submit_to_route,
               1000 * extract(epoch FROM called_at - routed_at) - %(model_ms)s
                   AS route_to_call_beyond_model,
               1000 * extract(epoch FROM finished_at - called_at) AS call_to_judge
        FROM bare_queries WHERE id = ANY(%(ids)s)
    """,
}


def _breakdown(
    db: psycopg.Connection[Any], kind: str, ids: list[uuid.UUID], model_ms: float
) -> dict[str, float]:
    cursor = db.execute(_BREAKDOWN[kind], {"ids": ids, "model_ms": model_ms})
    names = [column.name for column in cursor.description or []]
    rows = cursor.fetchall()
    return {name: statistics.median(float(row[i]) for row in rows) for i, name in enumerate(names)}


def _poll_latency(db: psycopg.Connection[Any], table: str, query_id: uuid.UUID) -> float:
    """Milliseconds from the row's creation to its completion, on the database's clock."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = db.execute(
            f"SELECT status, 1000 * extract(epoch FROM finished_at - created_at) FROM {table} "
            "WHERE id = %s",
            (query_id,),
        ).fetchone()
        if row is not None and row[0] in FINAL:
            if row[0] != "done":
                raise RuntimeError(f"{table} {query_id} ended {row[0]}")
            return float(row[1])
        time.sleep(0.002)
    raise TimeoutError(f"{table} {query_id} not done in 60 s")


def _httpx_one(bench: Bench, http: httpx.Client, n: int) -> float:
    started = time.perf_counter()
    response = http.post(
        bench.sim_url + "/chat/completions",
        json={"model": bench.model, "messages": [{"role": "user", "content": f"q {n}"}]},
    )
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "min": ordered[0]}


# -- throughput ----------------------------------------------------------------------------------


def throughput(bench: Bench, queries: int, repeats: int) -> dict[str, Any]:
    """Queries per second with every query submitted at once and a zero-latency model."""
    bench.configure(FAST)
    assert bench.settings is not None
    db = psycopg.connect(bench.plain_url, autocommit=True)
    broker = redis.Redis.from_url(bench.redis_url)
    results: dict[str, Any] = {}
    for pool, concurrency in POOLS:
        runs: dict[str, list[dict[str, float]]] = {"routeq": [], "bare": []}
        for _ in range(repeats):
            for system in ("routeq", "bare"):
                runs[system].append(
                    _one_throughput_run(bench, system, pool, concurrency, queries, db, broker)
                )
        results[f"{pool}-{concurrency}"] = {system: _summarise(r) for system, r in runs.items()}
    db.close()
    return results


def _one_throughput_run(
    bench: Bench,
    system: str,
    pool: str,
    concurrency: int,
    queries: int,
    db: psycopg.Connection[Any],
    broker: redis.Redis,
) -> dict[str, float]:
    assert bench.settings is not None
    table = "queries" if system == "routeq" else "bare_queries"
    db.execute(f"TRUNCATE {table} CASCADE")
    texts = [f"What is {n} times {n + 1}?" for n in range(queries)]
    with bench.workers(system, pool, concurrency):
        if system == "routeq":
            with Client(bench.settings) as client:  # warm the workers before counting
                client.submit_many(texts[:20])
        else:
            bare_celery.submit(bench.plain_url, texts[:20])
        _wait(lambda: _unfinished(db, table) == 0, 120, "warm-up", every=0.1)
        before = Counters.read(db, broker)
        polls = [0]

        def finished() -> bool:
            polls[0] += 1
            return _unfinished(db, table) == 0

        (start,) = db.execute("SELECT clock_timestamp()").fetchone() or (None,)
        if system == "routeq":
            with Client(bench.settings) as client:
                client.submit_many(texts[20:])
        else:
            bare_celery.submit(bench.plain_url, texts[20:])
        _wait(finished, 600, f"{system} {queries} queries", every=0.1)
    time.sleep(0.5)  # a backend's statistics reach pg_stat_database when it exits
    after = Counters.read(db, broker)
    measured, span = db.execute(
        f"SELECT count(*), extract(epoch FROM max(finished_at) - %s) FROM {table} "
        "WHERE created_at >= %s",
        (start, start),
    ).fetchone() or (0, None)
    # own_xacts: this process's polls and clock read, and the reads of Counters itself.
    counts = _per_query(before, after, int(measured), own_xacts=polls[0] + 3)
    return {"queries_per_s": int(measured) / float(span)} | counts


def _unfinished(db: psycopg.Connection[Any], table: str) -> int:
    row = db.execute(
        f"SELECT count(*) FROM {table} WHERE status NOT IN ('done', 'failed')"
    ).fetchone()
    return int(row[0]) if row else 0


def _summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    keys = runs[0].keys()
    return {
        key: {
            "min": min(run[key] for run in runs),
            "median": statistics.median(run[key] for run in runs),
            "max": max(run[key] for run in runs),
        }
        for key in keys
    } | {"runs": runs}


# -- SQL counts per hop --------------------------------------------------------------------------


def counts(bench: Bench, queries: int) -> dict[str, Any]:
    """Round trips, transactions and durable commits per hop kind, on the in-process pipeline
    (the workers' step functions on the same ledger class), counted from the engine's events."""
    import routeq.pipeline as pipeline

    bench.configure(FAST)
    assert bench.settings is not None
    engine = make_engine(bench.database_url, pool_size=1, pre_ping=False)  # as workers build it
    counter = StatementCounter(engine)
    steps = dict(pipeline.STEPS)
    hops: dict[str, int] = {}

    def counted(kind: str, step: pipeline.Step) -> pipeline.Step:
        def run(rt: Any, query_id: uuid.UUID, seq: int, **options: Any) -> Any:
            counter.kind = kind
            hops[kind] = hops.get(kind, 0) + 1
            try:
                return step(rt, query_id, seq, **options)
            finally:
                counter.kind = "other"

        return run

    pipeline.STEPS.update({kind: counted(kind.value, step) for kind, step in steps.items()})
    try:
        with pipeline.InProcessPipeline(bench.settings, Ledger(engine)) as run:
            run.submit(["warm up"])
            run.run()
            counter.reset()
            counter.kind = "submit"
            hops.clear()
            hops["submit"] = queries
            run.submit([f"What is {n} squared?" for n in range(queries)])
            counter.kind = "other"
            run.run()
    finally:
        pipeline.STEPS.update(steps)
        engine.dispose()
    result: dict[str, Any] = {}
    for kind, tally in counter.by_kind.items():
        count = hops.get(kind, 0)
        if count:
            result[kind] = {"hops": count} | {name: n / count for name, n in tally.items()}
    per_query: dict[str, float] = {}
    for tally in counter.by_kind.values():
        for name, n in tally.items():
            per_query[name] = per_query.get(name, 0) + n / queries
    return {"per_hop": result, "per_query": per_query, "queries": queries}


def _autocommit(conn: Any) -> bool:
    return bool(conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT")


class StatementCounter:
    """Counts what a SQLAlchemy engine sends, by the hop kind running at the time.

    Round trips: statements, plus BEGIN, COMMIT and ROLLBACK (psycopg sends each on its own),
    plus the pre-ping of each pool checkout when the engine pings. Transactions: BEGINs.
    Durable commits: commits of a transaction that wrote something without turning
    ``synchronous_commit`` off for itself (a read-only commit flushes nothing)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.kind = "other"
        self.by_kind: dict[str, dict[str, int]] = {}
        self._wrote = False
        self._async = False
        self._pings = bool(engine.pool._pre_ping)
        sa.event.listen(engine, "before_cursor_execute", self._execute)
        sa.event.listen(engine, "begin", self._begin)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "rollback", self._rollback)
        sa.event.listen(engine.pool, "checkout", self._checkout)

    def reset(self) -> None:
        self.by_kind.clear()

    def _add(self, name: str) -> None:
        tally = self.by_kind.setdefault(
            self.kind,
            {"round_trips": 0, "transactions": 0, "commits": 0, "durable_commits": 0},
        )
        tally[name] = tally.get(name, 0) + 1

    def _execute(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self._add("round_trips")
        head = statement.lstrip().split(None, 1)[0].upper()
        if "async_commit" in statement:  # the label of routeq's synchronous_commit off
            self._async = True
        if head in ("INSERT", "UPDATE", "DELETE") or (
            head == "WITH" and any(w in statement for w in ("UPDATE ", "INSERT ", "DELETE "))
        ):
            self._wrote = True
        if _autocommit(conn):  # the statement is its own transaction, committed with it
            self._add("transactions")
            self._add("commits")
            if self._wrote and not self._async:
                self._add("durable_commits")
            self._wrote = self._async = False

    def _begin(self, conn: Any) -> None:
        if not _autocommit(conn):  # psycopg sends no BEGIN in autocommit mode
            self._add("transactions")
            self._add("round_trips")
        self._wrote = self._async = False

    def _commit(self, conn: Any) -> None:
        if not _autocommit(conn):
            self._add("commits")
            self._add("round_trips")
            if self._wrote and not self._async:
                self._add("durable_commits")
        self._wrote = self._async = False

    def _rollback(self, conn: Any) -> None:
        if not _autocommit(conn):
            self._add("round_trips")
        self._wrote = self._async = False

    def _checkout(self, *_: Any) -> None:
        if self._pings:
            self._add("round_trips")


# -- submission ----------------------------------------------------------------------------------


def submit(bench: Bench, sizes: list[int], repeats: int) -> dict[str, Any]:
    bench.configure(FAST)
    assert bench.settings is not None
    db = psycopg.connect(bench.plain_url, autocommit=True)
    broker = redis.Redis.from_url(bench.redis_url)
    results: dict[str, Any] = {}
    for size in sizes:
        texts = [f"What is {n} plus {n}?" for n in range(size)]
        rates: dict[str, list[float]] = {"routeq": [], "bare": []}
        for _ in range(repeats):
            for system in ("routeq", "bare"):
                db.execute("TRUNCATE queries, bare_queries CASCADE")
                broker.flushdb()
                with Client(bench.settings) as client:
                    started = time.perf_counter()
                    if system == "routeq":
                        client.submit_many(texts)
                    else:
                        bare_celery.submit(bench.plain_url, texts)
                    rates[system].append(size / (time.perf_counter() - started))
        results[str(size)] = {
            system: {"min": min(r), "median": statistics.median(r), "max": max(r), "runs": r}
            for system, r in rates.items()
        }
    broker.flushdb()
    db.close()
    return results


# -- routing policies ----------------------------------------------------------------------------


def policies(bench: Bench, repeats: int) -> dict[str, Any]:
    """Microseconds per decision of the default router (rules, then the default policy), on
    the default ladder; the trained policies' decision times are in bench/routing.md."""
    from routeq.config import load_settings
    from routeq.policies import build_router
    from routeq.policies.base import QueryView

    settings = load_settings(None)
    router = build_router(settings)
    views = [
        QueryView(f"Question {n}: " + "word " * (n % 400), 5 + n % 400, {}, None)
        for n in range(2000)
    ]
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for view in views:
            router.decide(view, None)  # type: ignore[arg-type]
        timings.append((time.perf_counter() - started) * 1e6 / len(views))
    result = {router.policy.name: {"min_us": min(timings), "median_us": statistics.median(timings)}}
    for name, entry in result.items():
        print(
            f"\npolicy {name}: {entry['median_us']:.1f} us per decision (min {entry['min_us']:.1f})"
        )
    return result


# -- batch summarization -------------------------------------------------------------------------


def summarize(bench: Bench, documents: int, repeats: int) -> dict[str, Any]:
    """Documents per second through batch summarization (register, route, call, judge with
    the summary checks), zero-latency model, prefork 2; no baseline of the bare chain's."""
    bench.configure(FAST)
    assert bench.settings is not None
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    rates = []
    for run in range(repeats):
        docs = [
            {
                "id": f"doc-{run}-{n}",
                "text": " ".join(
                    f"Sentence {i} of document {run}-{n} is about {words[(n + i) % 12]}."
                    for i in range(40)
                ),
            }
            for n in range(documents)
        ]
        with bench.workers("routeq", "prefork", 2), Client(bench.settings) as client:
            started = time.perf_counter()
            batch = client.submit_batch(documents=docs, name=f"bench-{run}-{uuid.uuid4().hex[:6]}")
            progress = batch.wait(timeout=600)
            rates.append(progress.finished / (time.perf_counter() - started))
    result = {"documents": documents, "min": min(rates), "median": statistics.median(rates)}
    print(
        f"\nbatch summarization: {result['median']:.1f} documents/s "
        f"(min {result['min']:.1f}) for {documents} documents"
    )
    return result


# -- ledger size ---------------------------------------------------------------------------------


def ledger(bench: Bench, sizes: list[int], repeats: int) -> dict[str, Any]:
    """The metrics scrape and ``routeq report`` (by tier: over the whole ledger and its last
    day) on ledgers grown to each size in hops, with ``bench/report.py``'s synthetic rows;
    the rollup is rebuilt from the rows after each load, as if workers had written them."""
    from routeq.metrics import read_snapshot
    from routeq.traffic_report import Period, read_report

    url = report_bench.scratch_database(bench.admin_url)
    results: dict[str, Any] = {}
    try:
        upgrade(url)
        engine = make_engine(url)
        broker = redis.Redis.from_url(bench.redis_url)
        settings = Settings()
        top = settings.top_tier
        loaded = 0
        for hops in sizes:
            queries = hops // 4
            with engine.begin() as conn:
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
                for start in range(loaded + 1, queries + 1, 50_000):
                    stop = min(queries, start + 49_999)
                    conn.execute(
                        sa.text(report_bench.LOAD),
                        {"start": start, "stop": stop, "queries": max(sizes) // 4},
                    )
            loaded = queries
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
                conn.execute(sa.text("SELECT metrics.rebuild()"))
                conn.execute(sa.text("SELECT metrics.fold()"))
                # The fold deleted every delta the rebuild wrote: vacuum, as autovacuum would.
                conn.execute(sa.text("VACUUM ANALYZE metrics.deltas"))
                newest = conn.execute(sa.text("SELECT max(created_at) FROM queries")).scalar_one()
            day = Period(since=newest - timedelta(days=1))

            def timed(run: Callable[[], object]) -> dict[str, float]:
                seconds = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    run()
                    seconds.append(time.perf_counter() - started)
                return {"min_s": min(seconds), "median_s": statistics.median(seconds)}

            results[str(hops)] = {
                "metrics_scrape": timed(lambda: read_snapshot(engine, broker, [], settings)),
                "report_last_day": timed(lambda day=day: read_report(engine, "tier", day, top)),
                "report_all": timed(lambda: read_report(engine, "tier", Period(), top)),
            }
        engine.dispose()
    finally:
        report_bench.drop(bench.admin_url)
    return results


# -- the report ----------------------------------------------------------------------------------

SECTIONS = ("overhead", "throughput", "counts", "submit", "summarize", "policies", "ledger")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--model-ms", type=float, default=200.0)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--queries", type=int, default=1000, help="per throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="few queries: checks the bench runs")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("perf"))
    args = parser.parse_args()
    if args.quick:
        args.latency_queries, args.queries, args.repeats, args.model_ms = 20, 200, 1, 20.0
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    folder = tempfile.mkdtemp(prefix="routeq-perf-")
    if True:  # the folder (worker logs) is kept: it says what went wrong when a run fails
        bench = Bench(args.admin_url, args.redis_url, args.model_ms, Path(folder))
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "command": " ".join([".venv/bin/python", "bench/perf.py", *sys.argv[1:]]),
            "model_ms": args.model_ms,
        }
        try:
            bench.setup()
            if "overhead" in only:
                results["overhead"] = overhead(bench, args.latency_queries)
                _print_overhead(results["overhead"], args.model_ms)
            if "throughput" in only:
                results["throughput"] = throughput(bench, args.queries, args.repeats)
                _print_throughput(results["throughput"], args.queries)
            if "counts" in only:
                results["counts"] = counts(bench, 20)
                _print_counts(results["counts"])
            if "submit" in only:
                results["submit"] = submit(bench, [1000, 10000], args.repeats)
                _print_submit(results["submit"])
            if "summarize" in only:
                results["summarize"] = summarize(bench, 50 if args.quick else 300, args.repeats)
            if "policies" in only:
                results["policies"] = policies(bench, args.repeats)
            if "ledger" in only:
                sizes = [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000]
                results["ledger"] = ledger(bench, sizes, max(args.repeats, 3))
                _print_ledger(results["ledger"])
        finally:
            bench.teardown()
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out.with_suffix('.json')}; worker logs in {folder}")


def _print_overhead(result: dict[str, Any], model_ms: float) -> None:
    print(f"\n## Overhead per query beyond a {model_ms:.0f} ms model (ms, one in flight)\n")
    print("| | p50 | p95 | p99 | min |")
    print("|---|---|---|---|---|")
    for kind in ("routeq", "bare", "httpx"):
        r = result[kind]
        print(f"| {kind} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['min']:.1f} |")
    for p in ("p50", "p99"):
        ratio = result["routeq"][p] / result["bare"][p]
        print(f"\nrouteq / bare at {p}: {ratio:.2f}x")
    for kind, parts in result["breakdown_ms"].items():
        print(f"\n{kind}, where a query's time went (medians, ms): ", end="")
        print(", ".join(f"{name} {ms:.2f}" for name, ms in parts.items()))


def _print_throughput(result: dict[str, Any], queries: int) -> None:
    print(f"\n## Throughput, {queries} queries at once, zero-latency model (median of runs)\n")
    print(
        "| pool | routeq q/s | bare q/s | ratio | tx/query r / b | WAL syncs/query r / b "
        "| Redis cmds/query r / b | CPU ms/query r / b |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for pool, entry in result.items():
        r, b = entry["routeq"], entry["bare"]

        def pair(key: str, digits: int = 1, r: Any = r, b: Any = b) -> str:
            return f"{r[key]['median']:.{digits}f} / {b[key]['median']:.{digits}f}"

        ratio = r["queries_per_s"]["median"] / b["queries_per_s"]["median"]
        print(
            f"| {pool} | {r['queries_per_s']['median']:.0f} (min {r['queries_per_s']['min']:.0f}) "
            f"| {b['queries_per_s']['median']:.0f} (min {b['queries_per_s']['min']:.0f}) "
            f"| {ratio:.2f} | {pair('transactions_per_query')} | {pair('wal_syncs_per_query', 2)} "
            f"| {pair('redis_commands_per_query')} | {pair('cpu_ms_per_query')} |"
        )


def _print_counts(result: dict[str, Any]) -> None:
    print(f"\n## SQL per hop, counted ({result['queries']} queries, in-process pipeline)\n")
    print("| hop | round trips | transactions | durable commits |")
    print("|---|---|---|---|")
    for kind, entry in result["per_hop"].items():
        print(
            f"| {kind} | {entry['round_trips']:.2f} | {entry['transactions']:.2f} "
            f"| {entry['durable_commits']:.2f} |"
        )
    q = result["per_query"]
    print(
        f"| per query | {q.get('round_trips', 0):.1f} | {q.get('transactions', 0):.1f} "
        f"| {q.get('durable_commits', 0):.1f} |"
    )


def _print_ledger(result: dict[str, Any]) -> None:
    print("\n## Ledger size: seconds, median of runs (min)\n")
    print("| hops | metrics scrape | report, last day | report, whole ledger |")
    print("|---|---|---|---|")
    for hops, entry in result.items():
        cells = [
            f"{entry[key]['median_s']:.3f} ({entry[key]['min_s']:.3f})"
            for key in ("metrics_scrape", "report_last_day", "report_all")
        ]
        print(f"| {int(hops):,} | " + " | ".join(cells) + " |")


def _print_submit(result: dict[str, Any]) -> None:
    print("\n## submit_many (queries per second, median, min)\n")
    print("| queries | routeq | bare multi-row INSERT + publish | ratio |")
    print("|---|---|---|---|")
    for size, entry in result.items():
        r, b = entry["routeq"], entry["bare"]
        print(
            f"| {size} | {r['median']:.0f} ({r['min']:.0f}) | {b['median']:.0f} ({b['min']:.0f}) "
            f"| {r['median'] / b['median']:.2f} |"
        )


if __name__ == "__main__":
    main()
