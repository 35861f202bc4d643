"""The services docker-compose.yml names, run as local processes on the local Postgres and Redis.

No Docker engine runs here, so this test reads the compose file and starts each routeq service's
own command with its own environment. Only what a container network would provide is replaced:
host names and ports (postgres, redis, sim) and the secrets (.env.example's keys, with values).
Then it runs queries through them and checks Flower (with auth), the metrics endpoint, that
beat's reconciler runs reach the route worker, and the services' own health checks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from routeq import Client
from routeq.config import load_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVICES = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
EXAMPLE_ENV = dict(
    line.split("=", 1)
    for line in (REPO / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)
# The secrets a real .env would hold: the example's keys, with the placeholders replaced.
SECRETS = {key: value.replace("change-me-", "compose-test-") for key, value in EXAMPLE_ENV.items()}
QUESTIONS = [f"What is {n} + {n}? (compose check {n})" for n in range(10)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ComposeProcesses:
    """Starts compose services as processes, with container-network names mapped to local ones."""

    def __init__(self, tmp_path: Path, database_url: str, broker_url: str) -> None:
        self.tmp_path = tmp_path
        self.ports = {"sim": free_port(), "flower": free_port(), "metrics": free_port()}
        config = (REPO / "ops" / "compose" / "routeq.toml").read_text()
        self.config = tmp_path / "routeq.toml"
        self.config.write_text(config.replace("http://sim:8765", self.url("sim")))
        self.overrides = {
            "ROUTEQ_DATABASE_URL": database_url,
            "ROUTEQ_BROKER_URL": broker_url,
            "ROUTEQ_CONFIG": str(self.config),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self, name: str) -> dict[str, str]:
        declared = {
            key: re.sub(
                r"\$\{([A-Z_]+)[^}]*\}",
                lambda match: SECRETS.get(match.group(1), ""),
                str(value),
            )
            for key, value in SERVICES[name]["environment"].items()
        }
        assert set(self.overrides) <= set(declared), f"{name} lacks routeq's variables"
        local = {}
        if "ROUTEQ_BEAT_SCHEDULE" in declared:  # a path in the container: keep it in tmp_path
            local["ROUTEQ_BEAT_SCHEDULE"] = str(self.tmp_path / name / "celerybeat")
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ROUTEQ_")},
            **declared,
            **self.overrides,
            **local,
            "HOSTNAME": socket.gethostname(),  # what %h expands to, as in a container
        }

    def localize(self, name: str, args: list[str]) -> list[str]:
        """The service's own arguments, with its published port mapped to a free local one."""
        port = {"sim": "8765", "flower": "5555", "metrics": "9464"}.get(name)
        return [str(self.ports[name]) if port and arg == port else arg for arg in args]

    def start(self, name: str) -> subprocess.Popen[bytes]:
        command = self.localize(name, list(SERVICES[name]["command"]))
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "routeq", *command],
            env=self.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def wait_until(self, name: str, ready: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            process = self.processes[name]
            assert process.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            assert time.monotonic() < deadline, f"{name} not ready:\n{self.log(name)[-3000:]}"
            time.sleep(0.2)

    def health(self, name: str) -> subprocess.CompletedProcess[str]:
        """Run the service's own compose health check against the local process."""
        kind, *test = SERVICES[name]["healthcheck"]["test"]
        if kind == "CMD-SHELL":
            script = test[0].replace("$$", "$")
            argv = ["sh", "-c", script]
        else:
            argv = test
        argv = [a.replace("5555", str(self.ports["flower"])) for a in argv]
        argv = [a.replace("9464", str(self.ports["metrics"])) for a in argv]
        argv = [a.replace("8765", str(self.ports["sim"])) for a in argv]
        bindir = str(Path(sys.executable).parent)
        env = {**self.env(name), "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def reconciler_runs(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT runs FROM reconciler_stats WHERE id = 1")).scalar()
    return int(runs or 0)


def get(url: str, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


@pytest.fixture
def stack(tmp_path: Path, scratch_url: str, broker_url: str) -> Iterator[ComposeProcesses]:
    """The compose services, on a database with no schema: `migrate` must create it."""
    processes = ComposeProcesses(tmp_path, scratch_url, broker_url)
    try:
        yield processes
    finally:
        processes.stop()


def test_the_compose_services_run_queries_and_expose_flower_and_metrics(
    stack: ComposeProcesses,
) -> None:
    # Given the one-shot migration, run as compose runs it
    migrate = stack.start("migrate")
    assert migrate.wait(timeout=120) == 0, stack.log("migrate")
    # And every long-running routeq service of the compose file
    stack.start("sim")
    stack.wait_until("sim", lambda: port_open(stack.ports["sim"]))
    workers = [name for name in SERVICES if name.startswith("worker-")]
    assert len(workers) == 5
    for name in workers:
        stack.start(name)
    for name in workers:
        stack.wait_until(name, lambda name=name: " ready." in stack.log(name))
    beats = [
        name for name, service in SERVICES.items() if service.get("command", [])[:1] == ["beat"]
    ]
    assert beats == ["beat"], "exactly one beat schedules the reconciler"
    stack.start("beat")
    schedule = Path(stack.env("beat")["ROUTEQ_BEAT_SCHEDULE"])
    stack.wait_until("beat", lambda: any(schedule.parent.glob(schedule.name + "*")))
    stack.start("flower")
    stack.start("metrics")
    stack.wait_until("flower", lambda: port_open(stack.ports["flower"]))
    stack.wait_until("metrics", lambda: port_open(stack.ports["metrics"]))
    time.sleep(2)  # Flower subscribes to task events shortly after it listens

    # When queries go through them
    settings = load_settings(
        stack.config,
        database_url=stack.overrides["ROUTEQ_DATABASE_URL"],
        broker_url=stack.overrides["ROUTEQ_BROKER_URL"],
    )
    with Client(settings) as client:
        handles = client.submit_many(QUESTIONS)
        results = [handle.wait(timeout=120) for handle in handles]
    assert all(result.status == "done" for result in results)

    # And beat's reconciler runs reach the route worker (queue maintenance) and run
    engine = sa.create_engine(stack.overrides["ROUTEQ_DATABASE_URL"])
    try:
        stack.wait_until("beat", lambda: reconciler_runs(engine) >= 1, timeout=60)
    finally:
        engine.dispose()

    # Then Flower refuses anonymous users and shows the tasks, by id only, to authorised ones
    auth = SECRETS["ROUTEQ_FLOWER_BASIC_AUTH"]
    flower = stack.url("flower")
    assert get(f"{flower}/")[0] == 401
    assert get(f"{flower}/api/tasks", auth="admin:wrong")[0] == 401
    deadline = time.monotonic() + 30
    while True:
        status, body = get(f"{flower}/api/tasks", auth=auth)
        tasks = json.loads(body) if status == 200 else {}
        seen = {str(task.get("args")) for task in tasks.values()}
        if all(any(str(r.query_id) in args for args in seen) for r in results):
            break
        assert time.monotonic() < deadline, f"Flower did not show every query's tasks: {seen}"
        time.sleep(0.5)
    names = {task.get("name") for task in tasks.values()}
    # (a bulk submission's route hops travel 50 to a message: routeq.route_many)
    assert {"routeq.call", "routeq.judge"} <= names
    assert names & {"routeq.route", "routeq.route_many"}
    assert not any("compose check" in json.dumps(task) for task in tasks.values())
    status, body = get(f"{flower}/api/workers?refresh=1", auth=auth)
    assert status == 200
    assert {node.split("@")[0] for node in json.loads(body)} >= {
        "route", "judge", "cheap", "mid", "frontier"
    }  # fmt: skip
    status, body = get(f"{flower}/api/queues/length", auth=auth)
    assert status == 200
    queues = {queue["name"] for queue in json.loads(body)["active_queues"]}
    assert {"route", "judge", "maintenance", "tier.cheap", "tier.mid", "tier.frontier"} <= queues

    # And the metrics endpoint returns routeq's numbers
    status, text = get(f"{stack.url('metrics')}/metrics")
    assert status == 200
    finished = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("routeq_queries_finished_total{")
    )
    assert finished == len(QUESTIONS)
    for name in (
        'routeq_up{component="database"} 1.0',
        'routeq_up{component="broker"} 1.0',
        "routeq_hops_total{",
        "routeq_cost_usd_total{",
        "routeq_model_latency_seconds_bucket{",
        "routeq_judge_verdicts_total{",
        'routeq_queue_depth{queue="tier.cheap"}',
        "routeq_reconciler_runs_total ",
    ):
        assert name in text, name

    # And every service's own health check passes against it
    for name in [*workers, "beat", "flower", "metrics", "sim"]:
        result = stack.health(name)
        assert result.returncode == 0, f"{name}: {shlex.join(result.args)}\n{result.stderr}"
