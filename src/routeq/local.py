"""Everything a job needs on one machine when nothing is configured: the embedded default.

With no ``broker_url`` the broker is the embedded Redis under the state directory, which no
other worker can reach, so the command that needs work done starts its own workers: one group
for the route, judge and maintenance queues and one per tier, as in a deployment, so a slow
tier never holds up routing and judging, plus Celery beat for the reconciler.
With the default ladder pointing at the simulated model server and nothing answering there,
it starts that server too. Whatever it started, it stops on the way out; the ledger (and so
every finished summary) stays in the embedded Postgres for the next run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from routeq.config import DEFAULT_SIM_URL, Settings
from routeq.embedded import resolve_endpoints, state_dir, stop
from routeq.ledger import Ledger, make_engine
from routeq.ledger.migrate import upgrade
from routeq.sim import SimServer, default_sim_config

DEFAULT_LOCAL_WORKERS = 2  # processes per local worker group (route+judge, each tier)


@dataclass
class LocalStack:
    """The settings to use (with connection URLs filled in) and what was started for them."""

    settings: Settings
    started: list[str] = field(default_factory=list)
    worker_log: Path | None = None


@dataclass
class LocalWorkers:
    """The worker groups (and beat) one command started, named so their hops can be found."""

    processes: list[subprocess.Popen[bytes]]
    node_prefix: str  # every node is named "<prefix><group>@host"


def _uses_default_sim(settings: Settings) -> bool:
    endpoints = [tier.base_url for tier in settings.tiers]
    if settings.judge.model is not None:
        endpoints.append(settings.judge.model.base_url)
    return DEFAULT_SIM_URL in endpoints


def _answering(url: str) -> bool:
    parts = urlsplit(url)
    with suppress(OSError), socket.create_connection((parts.hostname, parts.port or 80), 0.5):
        return True
    return False


@contextmanager
def local_stack(settings: Settings, *, workers: int | None = None) -> Iterator[LocalStack]:
    """Resolve (and if needed start) the database, broker, simulated models and workers.

    ``workers``: worker processes to start; None means DEFAULT_LOCAL_WORKERS on the embedded
    broker and none on a configured one (its workers are deployed separately).
    """
    endpoints = resolve_endpoints(settings)
    stack = LocalStack(
        settings.model_copy(
            update={"database_url": endpoints.database_url, "broker_url": endpoints.broker_url}
        ),
        started=[f"embedded {name}" for name in endpoints.started],
    )
    sim: SimServer | None = None
    workers_started: LocalWorkers | None = None
    try:
        upgrade(endpoints.database_url)
        if _uses_default_sim(settings) and not _answering(DEFAULT_SIM_URL):
            port = urlsplit(DEFAULT_SIM_URL).port or 8765
            sim = SimServer(default_sim_config(), port=port).start()
            stack.started.append(f"simulated model server on {sim.url}")
        if workers is None:
            workers = DEFAULT_LOCAL_WORKERS if settings.broker_url is None else 0
        if workers > 0:
            stack.worker_log = state_dir(settings) / "worker.log"
            workers_started = start_workers(stack.settings, workers, stack.worker_log)
            groups = len(workers_started.processes) - 1
            stack.started.append(f"{groups} worker groups and beat (log: {stack.worker_log})")
        yield stack
    finally:
        if workers_started is not None:
            stop_workers(stack.settings, workers_started)
        if sim is not None:
            sim.stop()
        if endpoints.started:
            stop(settings, endpoints.started)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process that loads ``routeq.worker.main`` (a worker, Flower):
    the connection URLs of ``settings`` (which must be set) and its config file."""
    assert settings.database_url is not None and settings.broker_url is not None
    env = dict(
        os.environ,
        ROUTEQ_DATABASE_URL=settings.database_url,
        ROUTEQ_BROKER_URL=settings.broker_url,
        **extra,
    )
    if settings.config_file is not None:
        env["ROUTEQ_CONFIG"] = str(settings.config_file.resolve())
    return env


def start_worker(settings: Settings, count: int, log_path: Path) -> subprocess.Popen[bytes]:
    """``routeq worker`` with ``count`` processes on every queue, logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = ["worker", "-c", str(count), "--loglevel", "warning"]
    return _spawn(command, settings, log_path.open("ab"))


def worker_groups(settings: Settings, processes: int) -> list[tuple[str, list[str], int]]:
    """(name, queue options, concurrency) of each local worker group: route + judge +
    maintenance with ``processes`` processes, then one group per tier with at most its
    ``max_concurrency`` (and at most ``processes``) processes."""
    groups = [("control", ["-Q", "route", "-Q", "judge", "-Q", "maintenance"], processes)]
    for tier in settings.tiers:
        groups.append((tier.name, ["--tier", tier.name], min(tier.max_concurrency, processes)))
    return groups


def start_workers(settings: Settings, processes: int, log_path: Path) -> LocalWorkers:
    """Every worker group of ``worker_groups`` and ``routeq beat``, all logging to
    ``log_path``. Node names share a fresh prefix, so the hops these workers claim are known."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"local-{uuid.uuid4().hex[:8]}-"
    started: list[subprocess.Popen[bytes]] = []
    log = log_path.open("ab")
    for name, queues, count in worker_groups(settings, processes):
        command = ["worker", *queues, "-c", str(count), "--loglevel", "warning"]
        started.append(_spawn([*command, "--name", f"{prefix}{name}@%h"], settings, log))
    beat_env = {"ROUTEQ_BEAT_SCHEDULE": str(state_dir(settings) / "celerybeat")}
    started.append(_spawn(["beat"], settings, log, **beat_env))
    return LocalWorkers(started, prefix)


def _spawn(
    args: list[str], settings: Settings, log: IO[bytes], **extra: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "routeq", *args],
        env=worker_env(settings, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in the terminal reaches the CLI, not the workers
    )


def stop_workers(settings: Settings, workers: LocalWorkers) -> None:
    """Warm shutdown of every group at once (running calls finish within the grace), then hand
    back the hops that a worker killed after the grace left ``running``: this command knows
    its own workers are gone, so the next run takes those hops at once instead of waiting
    for their leases."""
    grace = settings.worker.shutdown_grace_s
    killed = _warm_shutdown(workers.processes, grace)
    if killed and settings.database_url is not None:
        with suppress(Exception):  # best effort: leases and the reconciler cover a failure
            engine = make_engine(settings.database_url, pool_size=1)
            try:
                released = Ledger(engine).release_claimed_by(workers.node_prefix)
            finally:
                engine.dispose()
            if released:
                print(
                    f"stopped the workers after {grace:g}s; {released} hops they were running "
                    "are queued again (running the same command again finishes them)",
                    file=sys.stderr,
                )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown of one worker with 30 s for its running tasks (see ``_warm_shutdown``);
    an interrupted hop is redelivered next time."""
    _warm_shutdown([worker], 30.0)


def _warm_shutdown(processes: list[subprocess.Popen[bytes]], grace_s: float) -> bool:
    """SIGTERM to each main process only, which lets running tasks finish (a signal to the
    whole group would kill the pool children mid-call); after ``grace_s`` (or a second
    Ctrl-C), SIGKILL to the groups still alive. Returns whether any had to be killed."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    killed = False
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed = True
    return killed
