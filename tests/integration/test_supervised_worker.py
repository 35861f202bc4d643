"""``routeq worker`` brings its Celery worker back: after the worker's main process is killed and
Redis restarts, the same node answers ``celery inspect ping`` (the compose health check) and
consumes queries again. Runs on its own ``redis-server``, since the test restarts it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import RedisServer
from stack import Stack, running_stack, sim_config

from routeq import Client

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:  # faults.RedisServer: no persistence
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; this test restarts its own Redis")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the "(comm)", which may itself hold spaces: state, ppid, ...
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def ping(stack: Stack, node: str) -> subprocess.CompletedProcess[str]:
    """The compose health check: ask ``node`` for a pong over the broker."""
    command = [sys.executable, "-m", "celery", "-A", "routeq.worker.main", "inspect", "ping"]
    return subprocess.run(
        [*command, "-d", node, "--timeout", "10"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_killed_worker_comes_back_after_a_redis_restart_and_consumes_again(
    tmp_path: Path, migrated_url: str, own_redis: RedisServer, ledger: object
) -> None:
    node = f"supervised@{socket.gethostname()}"
    with running_stack(tmp_path, migrated_url, own_redis.url, sim_config()) as (stack, _):
        # Given a supervised worker on every queue that has answered a query
        supervisor = stack.start_worker("-c", "2", "--name", "supervised@%h", name="sup")
        log = tmp_path / "worker-sup-0.log"
        with Client(stack.settings) as client:
            assert client.submit("What is a queue?").wait(timeout=60).ok
            assert ping(stack, node).returncode == 0
            (celery,) = children(supervisor.pid)

            # When its Celery main process is SIGKILLed and Redis restarts meanwhile
            os.kill(celery, signal.SIGKILL)
            own_redis.stop()
            time.sleep(2)  # the supervisor's 1 s backoff runs out while Redis is down
            own_redis.start()

            # Then the supervisor starts a new worker under the same node name
            deadline = time.monotonic() + 90
            while log.read_bytes().count(b" ready.") < 2:
                assert supervisor.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            text = log.read_text()
            assert f"celery worker (pid {celery}) was killed by SIGKILL" in text
            assert text.count("routeq worker: celery worker") == 1  # one restart, one line
            (restarted,) = children(supervisor.pid)
            assert restarted != celery
            result = ping(stack, node)
            assert result.returncode == 0, result.stdout + result.stderr
            assert node in result.stdout

            # and it consumes: a query published after the restart is answered
            after = client.submit("What is a supervisor?").wait(timeout=90)
            assert after.ok, after.reason

        # And SIGTERM to the supervisor still stops the worker with a warm shutdown
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        assert not Path(f"/proc/{restarted}").exists()  # reaped by the supervisor
