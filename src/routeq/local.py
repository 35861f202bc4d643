"""Everything a job needs on one machine when nothing is configured: the embedded default.

With no ``broker_url`` the broker is the embedded Redis under the state directory, which no
other worker can reach, so the command that needs work done starts its own worker processes.
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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from routeq.config import DEFAULT_SIM_URL, Settings
from routeq.embedded import resolve_endpoints, state_dir, stop
from routeq.ledger.migrate import upgrade
from routeq.sim import SimServer, default_sim_config

DEFAULT_LOCAL_WORKERS = 4


@dataclass
class LocalStack:
    """The settings to use (with connection URLs filled in) and what was started for them."""

    settings: Settings
    started: list[str] = field(default_factory=list)
    worker_log: Path | None = None


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
    worker: subprocess.Popen[bytes] | None = None
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
            worker = start_worker(stack.settings, workers, stack.worker_log)
            stack.started.append(f"{workers} worker processes (log: {stack.worker_log})")
        yield stack
    finally:
        if worker is not None:
            stop_worker(worker)
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
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "routeq", "worker", "-c", str(count), "--loglevel", "warning"],
        env=worker_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in the terminal reaches the CLI, not the worker
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown: SIGTERM to the main process only, which lets running tasks finish (a
    signal to the whole group would kill the pool children mid-call). SIGKILL to the group is
    the backstop, also on a second Ctrl-C; an interrupted hop is redelivered next time."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
