"""Everything a job needs on one machine when nothing is configured: the local stack.

One code path starts and stops it, for ``routeq summarize``, ``routeq submit --wait``, ``routeq
demo`` and ``Client.local()``:

- the database and broker: the configured ones, or the embedded Postgres and Redis under the
  state directory (``routeq.embedded.hold``: migrated, shared with other runs in that directory,
  and stopped after the last of them ends if one of them started them);
- worker groups as in a deployment, one for the route, judge and maintenance queues and one per
  tier, so a slow tier never holds up routing and judging, plus Celery beat for the reconciler.
  On the embedded broker nobody else serves this run's queues, so they start by default; on a
  configured broker the deployment's workers do, so none start unless asked for;
- for the tiers (and judge) configured on routeq's default simulator URL, a simulated model
  server for this run's workers. What answers on that port is used only when it identifies
  itself as routeq's simulator with every model the tiers name (``routeq.sim.identify``: a
  ``routeq sim-server`` the user started); otherwise, whatever it is, the run starts a simulator
  of its own on a free port and points those tiers at it. Another program on the port never
  gets the run's prompts, and two runs on one machine never share (or stop) each other's
  simulator.

The workers read this run's settings from a config file of their own (written under the state
directory's ``runs/``), so they see exactly what the command sees: simulator URLs, settings given
in code, and nothing of an older config. Whatever the run started, it stops on the way out; the
ledger (and so every finished answer) stays in the database for the next run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from routeq.config import DEFAULT_SIM_URL, Settings, write_config
from routeq.embedded import hold, state_dir
from routeq.errors import RouteqError
from routeq.ledger import Ledger, make_engine

if TYPE_CHECKING:
    from routeq.sim import SimConfig

DEFAULT_LOCAL_WORKERS = 2  # processes per local worker group (route+judge, each tier)


@dataclass
class LocalStack:
    """The settings to use (connection URLs filled in, simulated tiers on the simulator this
    run's workers use) and what was started for them."""

    settings: Settings
    started: list[str] = field(default_factory=list)
    worker_log: Path | None = None
    sim_url: str | None = None  # the simulator behind the simulated tiers, when workers run


@dataclass
class LocalWorkers:
    """The worker groups (and beat) one command started, named so their hops can be found."""

    processes: list[subprocess.Popen[bytes]]
    node_prefix: str  # every node is named "<prefix><group>@host"
    run_dir: Path  # their config file and beat schedule, removed when they stop


@contextmanager
def local_stack(
    settings: Settings,
    *,
    workers: int | None = None,
    sim: SimConfig | None = None,
    keep_running: bool = False,
) -> Iterator[LocalStack]:
    """Resolve (and if needed start) the database, broker, simulated models and workers.

    ``workers``: processes per worker group; None means DEFAULT_LOCAL_WORKERS on the embedded
    broker and none on a configured one (its workers are deployed separately). ``sim``: the
    simulated models to serve this run's simulated tiers with, always from a server of its own
    (the demo's seeded line-up); None reuses a ``routeq sim-server`` on the default URL that has
    the models, else starts the default line-up. ``keep_running`` leaves the embedded servers
    running at the end.
    """
    if workers is None:
        workers = DEFAULT_LOCAL_WORKERS if settings.broker_url is None else 0
    with hold(settings, keep_running=keep_running) as endpoints, ExitStack() as cleanup:
        urls = {"database_url": endpoints.database_url, "broker_url": endpoints.broker_url}
        stack = LocalStack(
            settings.model_copy(update=urls),
            started=[f"embedded {name}" for name in endpoints.started],
        )
        if workers > 0:
            simulated = cleanup.enter_context(_simulated_models(stack.settings, sim))
            if simulated is not None:
                stack.sim_url, started_sim = simulated
                stack.settings = _pointed_at(stack.settings, stack.sim_url)
                if started_sim:
                    stack.started.append(f"simulated model server on {stack.sim_url}")
            stack.worker_log = state_dir(settings) / "worker.log"
            running = start_workers(stack.settings, workers, stack.worker_log)
            cleanup.callback(stop_workers, stack.settings, running)
            groups = len(running.processes) - 1
            stack.started.append(f"{groups} worker groups and beat (log: {stack.worker_log})")
        yield stack


def _simulated_names(settings: Settings) -> set[str]:
    """The models named by the endpoints configured on the default simulator URL."""
    endpoints = [*settings.tiers, *([settings.judge.model] if settings.judge.model else [])]
    return {endpoint.model for endpoint in endpoints if endpoint.base_url == DEFAULT_SIM_URL}


@contextmanager
def _simulated_models(
    settings: Settings, sim: SimConfig | None
) -> Iterator[tuple[str, bool] | None]:
    """(URL, whether this run started it) of the simulator for the simulated tiers, or None
    when no tier is on the default simulator URL. Imported here, not at the top: the workers'
    own command line (``worker_env``) must not load the simulator."""
    from routeq.sim import SimServer, default_sim_config, identify

    wanted = _simulated_names(settings)
    if not wanted:
        yield None
        return
    if sim is None:
        found = identify(DEFAULT_SIM_URL)
        if found is not None and wanted <= found.models:
            yield DEFAULT_SIM_URL, False
            return
        sim = default_sim_config()
    missing = sorted(wanted - set(sim.models))
    if missing:
        raise RouteqError(
            f"tiers on the simulator URL {DEFAULT_SIM_URL} name models routeq's simulator does "
            f"not have ({', '.join(missing)}; it has {', '.join(sim.models)}): run `routeq "
            "sim-server --config FILE` with those models there, or fix the tiers' model names"
        )
    with SimServer(sim) as server:
        found = identify(server.url)
        if found is None or found.token != server.token:
            raise RouteqError(f"the simulated model server on {server.url} did not answer")
        yield server.url, True


def _pointed_at(settings: Settings, sim_url: str) -> Settings:
    """``settings`` with every endpoint on the default simulator URL moved to ``sim_url``."""
    tiers = [
        tier.model_copy(update={"base_url": sim_url}) if tier.base_url == DEFAULT_SIM_URL else tier
        for tier in settings.tiers
    ]
    judge = settings.judge
    if judge.model is not None and judge.model.base_url == DEFAULT_SIM_URL:
        model = judge.model.model_copy(update={"base_url": sim_url})
        judge = judge.model_copy(update={"model": model})
    return settings.model_copy(update={"tiers": tiers, "judge": judge})


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


def _run_env(settings: Settings, config_path: Path, **extra: str) -> dict[str, str]:
    """The environment of this run's workers: its own config file holds every setting, so the
    ``ROUTEQ_*`` variables that would override one are left out (the connection URLs, which
    may hold passwords, travel in the environment, never in the file)."""
    assert settings.database_url is not None and settings.broker_url is not None
    env = {name: value for name, value in os.environ.items() if not _sets_a_setting(name)}
    env.update(
        ROUTEQ_CONFIG=str(config_path),
        ROUTEQ_DATABASE_URL=settings.database_url,
        ROUTEQ_BROKER_URL=settings.broker_url,
        **extra,
    )
    return env


def _sets_a_setting(variable: str) -> bool:
    name = variable.lower()
    if not name.startswith("routeq_"):
        return False
    return name.removeprefix("routeq_").split("__", 1)[0] in Settings.model_fields


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
    ``log_path``, on exactly ``settings`` (written to this run's config file). Node names
    share a fresh prefix, so the hops these workers claim are known."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    run = f"local-{uuid.uuid4().hex[:8]}"
    prefix = f"{run}-"
    run_dir = state_dir(settings) / "runs" / run
    run_dir.mkdir(parents=True)
    config = write_config(
        settings.model_copy(update={"state_dir": state_dir(settings)}), run_dir / "routeq.toml"
    )
    started: list[subprocess.Popen[bytes]] = []
    with log_path.open("ab") as log:
        for name, queues, count in worker_groups(settings, processes):
            command = ["worker", *queues, "-c", str(count), "--loglevel", "warning"]
            env = _run_env(settings, config)
            started.append(_spawn([*command, "--name", f"{prefix}{name}@%h"], env, log))
        beat_env = _run_env(settings, config, ROUTEQ_BEAT_SCHEDULE=str(run_dir / "celerybeat"))
        started.append(_spawn(["beat"], beat_env, log))
    return LocalWorkers(started, prefix, run_dir)


def _spawn(args: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "routeq", *args],
        env=env,
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
    try:
        killed = _warm_shutdown(workers.processes, grace)
    finally:
        shutil.rmtree(workers.run_dir, ignore_errors=True)
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
