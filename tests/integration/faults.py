"""The fault-injection harness: routeq as deployed, on servers a test may break.

Every case runs real ``routeq worker`` groups (route + judge + maintenance, one per tier) and
``routeq beat`` as subprocesses, against a Redis server and a Postgres cluster of its own (so it
can restart, flush or stop them without touching the machine's), and the simulated model server
as a subprocess with a request log (so it can be killed, and so every request it received can be
compared with the ledger). Nothing in a case runs ``routeq recover`` or any other manual step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from routeq.config import (
    ProtectionConfig,
    RetryConfig,
    RoutingConfig,
    Settings,
    WorkerConfig,
    load_settings,
    write_config,
)
from routeq.ledger.migrate import upgrade

PG_BIN = Path(os.environ.get("ROUTEQ_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REPORT = Path(os.environ.get("ROUTEQ_FAULT_REPORT", "/tmp/routeq-fault-report.jsonl"))
PLANTED_KEY = "sk-routeq-planted-" + "7f3a9c1e5b2d4068"

FAULT_RETRY = RetryConfig(
    max_retries=2, backoff_base_s=0.05, backoff_max_s=0.2, retry_after_max_s=0.2, max_deliveries=4
)
# Short leases and a reconciler every second: recovery is measured in seconds.
FAULT_WORKER = WorkerConfig(
    step_lease_s=4.0,
    lease_margin_s=1.0,
    reconcile_interval_s=1.0,
    reconcile_grace_s=2.0,
    shutdown_grace_s=1.0,
)
# Breakers that open after 3 failures and probe again after 2 s; a wait deadline of 2 minutes.
FAULT_PROTECTION = ProtectionConfig(
    breaker_failures=3, breaker_open_s=2.0, wait_deadline_s=120.0, max_inline_wait_s=2.0
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    """Poll ``check`` until true; return the seconds it took, or raise naming ``what``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(every)
    return time.monotonic() - started


# -- servers a test owns ---------------------------------------------------------------------------


class RedisServer:
    """A redis-server on a free port, no persistence (a restart loses everything)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: _pings(client), 10, "redis-server start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class PostgresCluster:
    """A Postgres cluster of the test's own (initdb in a temporary directory), so that it can be
    restarted and stopped mid-run. As root (CI), the server runs as the ``postgres`` user."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        # Not under pytest's temporary directory: as root, that is closed to the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="routeq-pg-"))
        self.data = self.root / "pgdata"
        self.socket_dir = self.root / "pgsock"
        self.log = workdir / "postgres.log"

    @staticmethod
    def available() -> str | None:
        """Why a cluster cannot be made here, or None."""
        if not (PG_BIN / "initdb").exists():
            return f"no Postgres binaries in {PG_BIN} (set ROUTEQ_TEST_PG_BIN)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root without runuser"
        return None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, check=check, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            # fsync off is safe here (a crash of the server process keeps the OS's buffers);
            # synchronous_commit must stay on: the ledger's fencing relies on commits that
            # the client saw surviving a server crash.
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.data.parent / "pg.log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        """Stop for good and delete the cluster (its log is kept in the test's directory)."""
        self.stop("immediate")
        with suppress(OSError):
            shutil.copy(self.root / "postgres.log", self.log)
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        self.stop("immediate")  # like a crash: connections cut, no checkpoint
        self.start()

    def dump(self) -> str:
        return self._run(
            "pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "postgres"
        ).stdout.decode("utf-8", "replace")


class SimProcess:
    """``routeq sim-server`` as a process: killable, restartable on the same port, with a
    request log that outlives it."""

    def __init__(self, workdir: Path, models: dict[str, dict[str, Any]], seed: int = 11) -> None:
        self.port = free_port()
        self.config = workdir / "sim.toml"
        self.log = workdir / "sim-requests.log"
        lines = [f"seed = {seed}", "timeout_sleep_s = 3.0"]
        for name, fields in models.items():
            lines.append(f"[models.{name}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "routeq",
                "sim-server",
                "--port",
                str(self.port),
                "--config",
                str(self.config),
                "--request-log",
                str(self.log),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _connects(self.port), 20, "sim server start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def received(self) -> list[str]:
        """The request ids the server received, in order."""
        return [line.split()[0] for line in self._lines()]

    def arrivals(self, model: str) -> list[float]:
        """When the server received each request for ``model`` (Unix seconds)."""
        return [float(line.split()[2]) for line in self._lines() if line.split()[1] == model]

    def _lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def _connects(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def default_models(latency_ms: int = 120) -> dict[str, dict[str, Any]]:
    return {
        "sim-small": {"quality": 0.55, "latency_ms": latency_ms, "output_tokens": 30},
        "sim-medium": {"quality": 0.8, "latency_ms": latency_ms, "output_tokens": 40},
        "sim-large": {"quality": 0.97, "latency_ms": latency_ms, "output_tokens": 50},
        "sim-judge": {"quality": 1.0, "latency_ms": 20, "output_tokens": 15, "judge": True},
    }


# -- routeq on those servers -----------------------------------------------------------------------


@dataclass
class FaultStack:
    """routeq deployed on servers the test owns."""

    workdir: Path
    settings: Settings
    env: dict[str, str]
    redis: RedisServer
    sim: SimProcess
    database_url: str
    postgres: PostgresCluster | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "routeq", *args],
            env=env or self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_workers(self, concurrency: int = 2) -> None:
        """One group for route + judge + maintenance, one per tier, and beat."""
        self.spawn(
            "control",
            "worker",
            "-Q",
            "route",
            "-Q",
            "judge",
            "-Q",
            "maintenance",
            "-c",
            str(concurrency),
            "--name",
            "control@%h",
            "--loglevel",
            "info",
        )
        for tier in self.settings.tiers:
            self.spawn(
                f"tier-{tier.name}",
                "worker",
                "--tier",
                tier.name,
                "-c",
                str(concurrency),
                "--name",
                f"{tier.name}@%h",
                "--loglevel",
                "info",
            )
        self.spawn(
            "beat",
            "beat",
            "--loglevel",
            "info",
            env={**self.env, "ROUTEQ_BEAT_SCHEDULE": str(self.workdir / "celerybeat")},
        )
        wait_for(self._all_ready, 90, "workers ready", every=0.2)

    def _all_ready(self) -> bool:
        worker_logs = [log for log in self.logs if not log.name.startswith("beat")]
        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"a routeq process exited early: {process.args}")
        return all(b" ready." in log.read_bytes() for log in worker_logs if log.exists())

    def celery_pids(self) -> list[int]:
        """The Celery main processes and pool children under every worker group (not the
        supervisors, which restart what dies)."""
        pids: list[int] = []
        for process in self.processes:
            if "worker" not in process.args:
                continue
            pids += _descendants(process.pid)
        return pids

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.database_url)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        with suppress(OSError):
            for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
                found.append(int(child))
                frontier.append(int(child))
    return found


def fault_settings(
    sim_url: str,
    *,
    tier_overrides: dict[str, dict[str, Any]] | None = None,
    workdir: Path,
    routing: RoutingConfig | None = None,
    judge_url: str | None = None,
    **extra: Any,
) -> Settings:
    """The test ladder (``stack.ladder``/``stack.judge``) with every model's key in
    ``ROUTEQ_FAULT_KEY``, at most 4 concurrent calls per tier, and the fault suite's short
    retries, leases, reconciler and breakers. ``judge_url``: the judge's server, when it is
    not the tiers'."""
    from audit import TIERS
    from stack import judge, ladder

    given = tier_overrides or {}
    overrides = {name: {"max_concurrency": 4, **given.get(name, {})} for name in TIERS}
    keyed = {"api_key_env": "ROUTEQ_FAULT_KEY"}
    tiers = [tier.model_copy(update=keyed) for tier in ladder(sim_url, **overrides)]
    judging = judge(judge_url or sim_url)
    assert judging.model is not None
    return Settings(
        tiers=tiers,
        judge=judging.model_copy(update={"model": judging.model.model_copy(update=keyed)}),
        routing=routing or RoutingConfig(),
        retry=FAULT_RETRY,
        worker=FAULT_WORKER,
        protection=FAULT_PROTECTION,
        state_dir=workdir / "state",
        **extra,
    )


@contextmanager
def fault_stack(
    tmp_path: Path,
    *,
    own_postgres: bool = False,
    shared_database_url: str | None = None,
    models: dict[str, dict[str, Any]] | None = None,
    tier_overrides: dict[str, dict[str, Any]] | None = None,
    start_workers: bool = True,
    routing: RoutingConfig | None = None,
    judge_url: str | None = None,
    **settings_extra: Any,
) -> Iterator[FaultStack]:
    """routeq deployed on servers the test owns; ``settings_extra``: more settings sections
    (``spend``, ``privacy``) for the workers and the client."""
    redis_server = RedisServer(tmp_path)
    postgres = PostgresCluster(tmp_path) if own_postgres else None
    sim = SimProcess(tmp_path, models or default_models())
    sim.env["ROUTEQ_FAULT_KEY"] = PLANTED_KEY
    settings = fault_settings(
        sim.url,
        tier_overrides=tier_overrides,
        workdir=tmp_path,
        routing=routing,
        judge_url=judge_url,
        **settings_extra,
    )
    config_path = write_config(settings, tmp_path / "routeq.toml")
    stack: FaultStack | None = None
    try:  # everything started below is stopped, however far the start got
        redis_server.start()
        if postgres is not None:
            postgres.init()
            database_url = postgres.url
        else:
            assert shared_database_url is not None
            database_url = shared_database_url
        upgrade(database_url)
        sim.start()
        env = dict(
            os.environ,
            ROUTEQ_CONFIG=str(config_path),
            ROUTEQ_DATABASE_URL=database_url,
            ROUTEQ_BROKER_URL=redis_server.url,
            ROUTEQ_FAULT_KEY=PLANTED_KEY,
        )
        os.environ["ROUTEQ_FAULT_KEY"] = PLANTED_KEY  # the client loads the same config
        client_settings = load_settings(
            config_path, database_url=database_url, broker_url=redis_server.url
        )
        stack = FaultStack(
            tmp_path, client_settings, env, redis_server, sim, database_url, postgres
        )
        if start_workers:
            stack.start_workers()
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        sim.kill()
        redis_server.stop()
        if postgres is not None:
            postgres.remove()
        os.environ.pop("ROUTEQ_FAULT_KEY", None)


# -- what must hold after every case ---------------------------------------------------------------


def live_queries(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM queries WHERE status IN ('queued', 'running')")
            ).scalar_one()
        )


def wait_all_final(stack: FaultStack, timeout: float) -> float:
    """Seconds until no query is live (polling the ledger through Postgres outages)."""
    engine = stack.engine()

    def done() -> bool:
        try:
            return live_queries(engine) == 0
        except sa.exc.OperationalError:
            return False

    try:
        return wait_for(done, timeout, "every query final", every=0.25)
    finally:
        engine.dispose()


def audit(
    stack: FaultStack, expected_queries: int, exempt: frozenset[Any] = frozenset()
) -> dict[str, Any]:
    """The invariants of every fault case; returns the counts for the report. ``exempt``
    queries (a poison query, checked by its case) skip the journey check only."""
    from audit import assert_journey_consistent, ledger_rows

    queries, hops, requests = ledger_rows(stack.database_url)
    assert len(queries) == expected_queries, f"{len(queries)} queries, expected {expected_queries}"
    for query in queries.values():
        if query.parent_id is None and query.task is None and query.id not in exempt:
            assert_journey_consistent(query, hops[query.id], requests)
    all_requests = [r for rs in requests.values() for r in rs]
    # no call recorded twice: a finished call has one answer, from the delivery that finished it
    for journey in hops.values():
        for hop in journey:
            if hop.kind == "call" and hop.status == "done":
                winners = [
                    r for r in requests[hop.id] if r.outcome == "ok" and r.delivery == hop.attempts
                ]
                assert len(winners) == 1, f"hop {hop.id}: {len(winners)} answers recorded"
    # every request the model server received is on the ledger, and nothing is left pending
    ledger_ids = {str(r.id) for r in all_requests}
    received = stack.sim.received()
    missing = [rid for rid in received if rid not in ledger_ids]
    assert not missing, f"{len(missing)} requests the server received are not on the ledger"
    assert not [r for r in all_requests if r.outcome == "pending"], "requests left pending"
    total = sum((q.total_cost for q in queries.values()), Decimal(0))
    assert total == sum((r.cost for r in all_requests), Decimal(0)), "costs do not add up"
    unknown = [r for r in all_requests if r.outcome == "unknown"]
    engine = stack.engine()
    with engine.connect() as conn:
        republished = conn.execute(
            sa.text("SELECT coalesce(sum(republished), 0) FROM reconciler_stats")
        ).scalar_one()
    engine.dispose()
    return {
        "republished_by_reconciler": int(republished),
        "queries": len(queries),
        "done": sum(q.status == "done" for q in queries.values()),
        "failed": sum(q.status == "failed" for q in queries.values()),
        "requests_received": len(received),
        "requests_on_ledger": len(all_requests),
        "unknown_outcome": len(unknown),
        "max_unknown_cost": str(sum((r.max_cost or Decimal(0) for r in unknown), Decimal(0))),
        "cost": str(total),
    }


def report(case: str, recovery_s: float, counts: dict[str, Any], **extra: Any) -> None:
    """Append one row of the results table (docs/reliability.md) to ``REPORT``."""
    row = {"case": case, "recovery_s": round(recovery_s, 1), **counts, **extra}
    with REPORT.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def submit_load(
    stack: FaultStack,
    count: int,
    prefix: str,
    metadata: Callable[[int], dict[str, Any]] | None = None,
) -> list[Any]:
    from routeq import Client

    with Client(stack.settings) as client:
        return client.submit_many(
            [
                {
                    "text": f"Explain {prefix} topic number {i} in two sentences.",
                    "idempotency_key": f"{prefix}-{i}",
                    **({"metadata": metadata(i)} if metadata else {}),
                }
                for i in range(count)
            ]
        )


def random_kills(stack: FaultStack, rounds: int, every_s: float, rng: random.Random) -> int:
    """SIGKILL a random Celery main process or pool child, ``rounds`` times."""
    killed = 0
    for _ in range(rounds):
        time.sleep(every_s * (0.5 + rng.random()))
        pids = stack.celery_pids()
        if not pids:
            continue
        with suppress(ProcessLookupError):
            os.kill(rng.choice(pids), signal.SIGKILL)
            killed += 1
    return killed
