"""``routeq flower`` serves nothing without its basic-auth credentials: not even ``/metrics`` and
``/healthcheck``, which Flower on its own serves to anyone."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

import pytest
import redis

from conftest import REDIS_URL, service_unavailable

pytestmark = pytest.mark.integration

CREDENTIALS = "admin:flower-test-pw,ops:second-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, auth: str | None = None, method: str = "GET") -> tuple[int, str, Message]:
    """Status, body and headers of one request (an HTTP error is an answer, not a failure)."""
    req = urllib.request.Request(url, method=method)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), error.headers


@dataclass
class Flower:
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def flower(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    """One ``routeq flower`` for the module (it takes seconds to start), on the test Redis, with
    no routeq.toml or ROUTEQ_* variable of the developer's."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as error:
        service_unavailable("Redis", error)
    tmp_path = tmp_path_factory.mktemp("flower")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEQ_")}
    env.update(
        ROUTEQ_DATABASE_URL=database_url,
        ROUTEQ_BROKER_URL=REDIS_URL,
        ROUTEQ_FLOWER_BASIC_AUTH=CREDENTIALS,
    )
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "routeq", "flower", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
        yield Flower(f"http://127.0.0.1:{port}", env)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        client.flushdb()
        client.close()


@pytest.mark.parametrize("path", ["/metrics", "/healthcheck"])
def test_metrics_and_healthcheck_refuse_requests_without_valid_credentials(
    flower: Flower, path: str
) -> None:
    status, _, headers = request(flower.url + path)
    assert status == 401
    assert headers.get("WWW-Authenticate") == 'Basic realm="flower"'
    assert request(flower.url + path, auth="admin:wrong")[0] == 401
    assert request(flower.url + path, auth="nobody:flower-test-pw")[0] == 401
    assert request(flower.url + path, method="HEAD")[0] == 401  # not a 405 that leaks nothing


def test_metrics_and_healthcheck_answer_with_the_credentials(flower: Flower) -> None:
    status, body, _ = request(flower.url + "/metrics", auth="admin:flower-test-pw")
    assert status == 200
    assert "# TYPE flower_events_total counter" in body
    # every configured pair works, as on the rest of Flower
    assert request(flower.url + "/metrics", auth="ops:second-pw")[0] == 200
    assert request(flower.url + "/healthcheck", auth="ops:second-pw")[:2] == (200, "OK")


@pytest.mark.parametrize("path", ["/", "/workers", "/tasks", "/broker", "/api/workers"])
def test_the_rest_of_flower_still_requires_the_credentials(flower: Flower, path: str) -> None:
    assert request(flower.url + path)[0] == 401
    assert request(flower.url + path, auth="admin:wrong")[0] == 401
    assert request(flower.url + path, auth="admin:flower-test-pw")[0] == 200


def test_the_healthcheck_probe_passes_with_the_credentials_from_its_environment(
    flower: Flower,
) -> None:
    probe = [sys.executable, "-m", "routeq.flower_auth", "healthcheck"]
    url = flower.url + "/healthcheck"

    def run(credentials: str | None) -> int:
        env = {k: v for k, v in flower.env.items() if k != "ROUTEQ_FLOWER_BASIC_AUTH"}
        if credentials is not None:
            env["ROUTEQ_FLOWER_BASIC_AUTH"] = credentials
        return subprocess.run([*probe, url], env=env, timeout=60).returncode

    assert run(CREDENTIALS) == 0  # the first pair
    assert run("admin:wrong") == 1
    assert run(None) == 1
