"""Running routeq as it runs in production, for integration tests: a config file, the simulated
model server, and real ``routeq worker`` processes on real Redis and Postgres."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from routeq.config import (
    JudgeConfig,
    ModelEndpoint,
    RetryConfig,
    Settings,
    TierConfig,
    WorkerConfig,
    load_settings,
    write_config,
)
from routeq.sim import SimConfig, SimModel, SimServer

FAST_RETRY = RetryConfig(
    max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05, retry_after_max_s=0.1, max_deliveries=3
)


def sim_config(seed: int = 7, **models: SimModel) -> SimConfig:
    defaults = {
        "sim-small": SimModel("sim-small", quality=0.55, latency_ms=5, output_tokens=40),
        "sim-medium": SimModel("sim-medium", quality=0.8, latency_ms=5, output_tokens=60),
        "sim-large": SimModel("sim-large", quality=0.97, latency_ms=5, output_tokens=80),
        "sim-judge": SimModel("sim-judge", quality=1.0, latency_ms=2, output_tokens=20, judge=True),
    }
    defaults.update(models)
    return SimConfig(seed=seed, models=defaults)


def sim_qualities(**qualities: float) -> SimConfig:
    """``sim_config`` with the named models' quality set (``small=0.1`` for sim-small),
    answering in a millisecond: a ladder whose verdicts a test decides."""
    return sim_config(
        **{
            f"sim-{size}": SimModel(f"sim-{size}", quality=quality, latency_ms=1)
            for size, quality in qualities.items()
        }
    )


def bad_tiers_sim(latency_ms: int = 3) -> SimConfig:
    """The 200-query scenario's ladder: cheap and mid answer badly often and fail sometimes
    (500s on cheap, 429s with Retry-After on mid), and the judge sometimes replies garbage."""
    return sim_config(
        **{
            "sim-small": SimModel(
                "sim-small", quality=0.45, latency_ms=latency_ms, output_tokens=40, fault_500=0.05
            ),
            "sim-medium": SimModel(
                "sim-medium",
                quality=0.7,
                latency_ms=latency_ms,
                output_tokens=60,
                fault_429=0.05,
                retry_after_s=0.01,
            ),
            "sim-judge": SimModel(
                "sim-judge",
                quality=1.0,
                latency_ms=min(latency_ms, 1),
                output_tokens=20,
                judge=True,
                fault_malformed=0.02,
            ),
        }
    )


def ladder(sim_url: str, **tier_overrides: dict[str, Any]) -> list[TierConfig]:
    """cheap → mid → frontier on the simulated server, with per-tier overrides."""
    base: list[dict[str, Any]] = [
        {
            "name": "cheap",
            "model": "sim-small",
            "input_price_per_mtok": "0.15",
            "output_price_per_mtok": "0.60",
            "context_window": 16000,
            "system_prompt": "If unsure reply [ESCALATE].",
        },
        {
            "name": "mid",
            "model": "sim-medium",
            "input_price_per_mtok": "1",
            "output_price_per_mtok": "4",
            "context_window": 64000,
        },
        {
            "name": "frontier",
            "model": "sim-large",
            "input_price_per_mtok": "5",
            "output_price_per_mtok": "15",
            "context_window": 200000,
        },
    ]
    tiers = []
    for spec in base:
        spec.update(tier_overrides.get(spec["name"], {}))
        tiers.append(
            TierConfig(**{"provider": "openai", "base_url": sim_url, "timeout_s": 2.0, **spec})
        )
    return tiers


def run_routeq(
    settings: Settings, folder: Path, database_url: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m routeq ARGS`` with ``settings`` written to a config file in ``folder``, on
    the ledger at ``database_url`` only (nothing else of the environment)."""
    config = write_config(settings, folder / "routeq.toml")
    env = {
        "ROUTEQ_CONFIG": str(config),
        "ROUTEQ_DATABASE_URL": database_url,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "routeq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def judge(sim_url: str) -> JudgeConfig:
    return JudgeConfig(
        model=ModelEndpoint(
            provider="openai",
            base_url=sim_url,
            model="sim-judge",
            input_price_per_mtok=Decimal("0.1"),
            output_price_per_mtok=Decimal("0.4"),
            timeout_s=2.0,
        )
    )


@dataclass
class Stack:
    """Everything a test needs to drive routeq from the outside."""

    settings: Settings
    config_path: Path
    env: dict[str, str]
    workdir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, *args: str, name: str = "w") -> subprocess.Popen[bytes]:
        """``routeq worker`` in its own process group, waited on until Celery reports ready."""
        log_path = self.workdir / f"worker-{name}-{len(self.workers)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "routeq", "worker", "--loglevel", "info", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        deadline = time.monotonic() + 60
        while b" ready." not in log_path.read_bytes():
            if process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready in 60s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        return process

    def start_beat(self) -> subprocess.Popen[bytes]:
        """``routeq beat``: runs the reconciler every ``worker.reconcile_interval_s``."""
        log = (self.workdir / "beat.log").open("wb")
        env = {**self.env, "ROUTEQ_BEAT_SCHEDULE": str(self.workdir / "celerybeat")}
        process = subprocess.Popen(
            [sys.executable, "-m", "routeq", "beat", "--loglevel", "info"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        return process

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children at once: no chance to ack or clean up."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def running_stack(
    tmp_path: Path,
    database_url: str,
    broker_url: str,
    sim: SimConfig,
    *,
    tier_overrides: dict[str, dict[str, Any]] | None = None,
    worker: WorkerConfig | None = None,
    retry: RetryConfig = FAST_RETRY,
    judge_overrides: dict[str, Any] | None = None,
    **settings_extra: Any,
) -> Iterator[tuple[Stack, SimServer]]:
    with SimServer(sim) as server:
        settings = Settings(
            **settings_extra,
            tiers=ladder(server.url, **(tier_overrides or {})),
            judge=judge(server.url).model_copy(update=judge_overrides or {}),
            retry=retry,
            worker=worker or WorkerConfig(),
            state_dir=tmp_path / "state",
        )
        config_path = write_config(settings, tmp_path / "routeq.toml")
        env = dict(
            os.environ,
            ROUTEQ_CONFIG=str(config_path),
            ROUTEQ_DATABASE_URL=database_url,
            ROUTEQ_BROKER_URL=broker_url,
        )
        client_settings = load_settings(
            config_path, database_url=database_url, broker_url=broker_url
        )
        stack = Stack(client_settings, config_path, env, tmp_path)
        try:
            yield stack, server
        finally:
            stack.stop()
