"""The worker supervisor: its restart policy as plain functions, and its signal handling and
restarts on stand-in child processes (small Python scripts, no broker or database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from routeq.cli import app
from routeq.worker import supervisor
from routeq.worker.supervisor import (
    Backoff,
    describe_exit,
    exit_status,
    restart_message,
    should_restart,
    signal_to_forward,
)

# --- the policy ---------------------------------------------------------------------------


def test_backoff_doubles_from_one_second_up_to_thirty() -> None:
    backoff = Backoff()
    assert [backoff.delay(ran_for_s=0.5) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_backoff_starts_again_after_a_child_that_ran_healthy_for_a_minute() -> None:
    backoff = Backoff()
    for _ in range(4):
        backoff.delay(ran_for_s=1)
    assert backoff.delay(ran_for_s=59.9) == 16  # not yet healthy: keeps growing
    assert backoff.delay(ran_for_s=60) == 1
    assert backoff.delay(ran_for_s=2) == 2


def test_backoff_rejects_a_cap_below_the_first_delay() -> None:
    with pytest.raises(ValueError):
        Backoff(initial_s=5, max_s=1)


@pytest.mark.parametrize(
    ("returncode", "stop_requested", "restart"),
    [
        (1, False, True),  # Celery's "Unrecoverable error" exit
        (-signal.SIGKILL, False, True),  # OOM killer, or a kill nobody forwarded
        (-signal.SIGSEGV, False, True),
        (0, False, False),  # a remote shutdown command: honour it
        (0, True, False),  # the warm shutdown the operator asked for
        (1, True, False),  # a cold shutdown the operator asked for
        (-signal.SIGTERM, True, False),  # SIGTERM before Celery installed its handler
    ],
)
def test_restart_only_a_child_that_ended_on_its_own_with_a_failure(
    returncode: int, stop_requested: bool, restart: bool
) -> None:
    assert should_restart(returncode, stop_requested) is restart


@pytest.mark.parametrize(("returncode", "status"), [(0, 0), (1, 1), (-9, 137), (-15, 143)])
def test_exit_status_follows_the_shell_convention_for_signals(returncode: int, status: int) -> None:
    assert exit_status(returncode) == status


def test_the_first_sigint_is_forwarded_as_sigterm_and_later_ones_as_they_are() -> None:
    # Ctrl-C already reached the child through the terminal; a forwarded second SIGINT would
    # make Celery's warm shutdown a cold one.
    assert signal_to_forward(signal.SIGINT, []) == signal.SIGTERM
    assert signal_to_forward(signal.SIGINT, [signal.SIGINT]) == signal.SIGINT
    assert signal_to_forward(signal.SIGINT, [signal.SIGTERM]) == signal.SIGTERM
    assert signal_to_forward(signal.SIGTERM, []) == signal.SIGTERM
    assert signal_to_forward(signal.SIGTERM, [signal.SIGINT]) == signal.SIGTERM
    assert signal_to_forward(signal.SIGQUIT, []) == signal.SIGQUIT


def test_the_restart_line_says_how_the_child_ended_and_when_it_comes_back() -> None:
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-200) == "was killed by signal 200"
    line = restart_message(pid=4242, returncode=-9, ran_for_s=12.34, delay_s=4, restarts=3)
    assert line == (
        "routeq worker: celery worker (pid 4242) was killed by SIGKILL after 12.3 s; "
        "restart 3 in 4 s"
    )


# --- the supervisor on stand-in children ----------------------------------------------------

# A stand-in worker. Each start appends its pid to ``starts``; start number N (from 0) follows
# the Nth plan word (the last one repeats): ``exit:CODE`` exits at once, ``kill`` SIGKILLs
# itself; ``serve`` waits for signals, appending each one's name to ``signals``, and exits 0 on
# SIGTERM (like Celery's warm shutdown); ``serve-ints`` notes SIGTERM but only exits, with 7, on
# SIGINT; ``serve-default`` waits with the default signal actions.
CHILD = """
import os, signal, sys, time
from pathlib import Path

state = Path(sys.argv[1])
plan = sys.argv[2].split(",")
starts = state / "starts"
with starts.open("a") as f:
    f.write(f"{os.getpid()}\\n")
step = plan[min(len(starts.read_text().split()) - 1, len(plan) - 1)]
if step.startswith("exit:"):
    sys.exit(int(step[5:]))
if step == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if step in ("serve", "serve-ints"):

    def note(signum, frame):
        with (state / "signals").open("a") as f:
            f.write(signal.Signals(signum).name + "\\n")
        if signum == signal.SIGTERM and step == "serve":
            sys.exit(0)
        if signum == signal.SIGINT:
            sys.exit(7)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, note)
(state / "ready.tmp").write_text(str(os.getpid()))
(state / "ready.tmp").rename(state / "ready")
while True:
    time.sleep(0.05)
"""

# The supervisor under test, with a fast backoff so restarts take milliseconds. It loads the
# module from its file: importing the routeq package would add seconds to every start.
DRIVER = """
import importlib.util, os, sys

spec = importlib.util.spec_from_file_location("supervisor", sys.argv.pop(1))
module = sys.modules["supervisor"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
Backoff, Supervisor = module.Backoff, module.Supervisor
initial = float(sys.argv[1])
backoff = Backoff(initial_s=initial, max_s=max(initial, 0.2), healthy_after_s=60)
sys.exit(Supervisor(sys.argv[2:], os.environ, backoff=backoff).run())
"""

SECRET = "s3cret-broker-password"


class Run:
    """A supervisor process around the stand-in child, and the child's traces."""

    def __init__(self, tmp_path: Path, plan: str, initial_backoff_s: float = 0.05) -> None:
        self.state = tmp_path
        (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
        (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
        driver = [sys.executable, str(tmp_path / "driver.py"), supervisor.__file__]
        command = [sys.executable, str(tmp_path / "child.py"), str(tmp_path), plan]
        self.process = subprocess.Popen(
            [*driver, str(initial_backoff_s), *command],
            env={**os.environ, "ROUTEQ_BROKER_URL": f"redis://:{SECRET}@127.0.0.1:1/0"},
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def starts(self) -> list[int]:
        path = self.state / "starts"
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def signals(self) -> list[str]:
        path = self.state / "signals"
        return path.read_text().split() if path.exists() else []

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"supervisor exited: {self.finish()}"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    def ready(self) -> int:
        """Wait until a serving child is up; its pid."""
        self.wait_for(lambda: (self.state / "ready").exists())
        return int((self.state / "ready").read_text())

    def finish(self, timeout: float = 10) -> tuple[int, str]:
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(plan: str, **kwargs: float) -> Run:
        runs.append(Run(tmp_path, plan, **kwargs))
        return runs[-1]

    yield start
    for started in runs:
        started.kill()


def test_a_crashed_child_is_restarted_and_sigterm_then_stops_it(run: Callable[..., Run]) -> None:
    # Given a worker that exits with status 3, then is killed by SIGKILL, then runs
    supervised = run("exit:3,kill,serve")
    serving = supervised.ready()

    # When the operator sends SIGTERM to the supervisor
    assert len(supervised.starts()) == 3
    supervised.process.send_signal(signal.SIGTERM)
    status, stderr = supervised.finish()

    # Then the running child got it and the supervisor left with the child's status
    assert supervised.signals() == ["SIGTERM"]
    assert status == 0
    assert supervised.starts()[-1] == serving
    # and each restart was one line naming how the child ended, without the environment
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert "exited with status 3" in lines[0] and "restart 1 in" in lines[0]
    assert "was killed by SIGKILL" in lines[1] and "restart 2 in" in lines[1]
    assert SECRET not in stderr and "redis://" not in stderr


def test_ctrl_c_twice_reaches_the_child_as_sigterm_then_sigint(run: Callable[..., Run]) -> None:
    supervised = run("serve-ints")
    supervised.ready()
    supervised.process.send_signal(signal.SIGINT)
    supervised.wait_for(lambda: supervised.signals() == ["SIGTERM"])
    supervised.process.send_signal(signal.SIGINT)
    status, stderr = supervised.finish()
    assert supervised.signals() == ["SIGTERM", "SIGINT"]
    assert status == 7  # the child's own status, on the SIGINT that the second Ctrl-C sent
    assert len(supervised.starts()) == 1
    assert stderr == ""


def test_sigquit_is_forwarded_unchanged(run: Callable[..., Run]) -> None:
    supervised = run("serve")
    child = supervised.ready()
    supervised.process.send_signal(signal.SIGQUIT)
    supervised.wait_for(lambda: supervised.signals() == ["SIGQUIT"])
    # SIGQUIT does not end this stand-in; the supervisor keeps waiting for it, not restarting
    time.sleep(0.3)
    assert supervised.process.poll() is None
    os.kill(child, signal.SIGKILL)
    status, stderr = supervised.finish()
    assert status == 128 + signal.SIGKILL
    assert len(supervised.starts()) == 1  # stopping: a kill is not a crash to restart
    assert stderr == ""


def test_a_child_killed_by_the_forwarded_signal_gives_the_shell_status(
    run: Callable[..., Run],
) -> None:
    supervised = run("serve-default")
    supervised.ready()
    supervised.process.send_signal(signal.SIGTERM)
    status, _ = supervised.finish()
    assert status == 128 + signal.SIGTERM
    assert len(supervised.starts()) == 1


def test_a_clean_exit_of_its_own_ends_the_supervision(run: Callable[..., Run]) -> None:
    supervised = run("exit:0")
    status, stderr = supervised.finish()
    assert status == 0
    assert len(supervised.starts()) == 1
    assert stderr == ""


def test_a_stop_during_the_backoff_ends_it_at_once(run: Callable[..., Run]) -> None:
    # Given a worker that keeps failing, and a long pause before each restart
    supervised = run("exit:1", initial_backoff_s=30)
    supervised.wait_for(lambda: len(supervised.starts()) == 1)
    time.sleep(0.5)  # the child has exited; the supervisor is sleeping out its backoff

    # When the operator stops it
    started = time.monotonic()
    supervised.process.send_signal(signal.SIGTERM)
    status, stderr = supervised.finish()

    # Then it exits well before the 30 s backoff, without another start
    assert time.monotonic() - started < 2
    assert status == 128 + signal.SIGTERM
    assert len(supervised.starts()) == 1
    assert "exited with status 1" in stderr and "in 30 s" in stderr


def test_restarts_back_off_while_the_child_keeps_failing(run: Callable[..., Run]) -> None:
    supervised = run("exit:1,exit:1,exit:1,exit:1,serve", initial_backoff_s=0.05)
    supervised.ready()
    supervised.process.send_signal(signal.SIGTERM)
    _, stderr = supervised.finish()
    delays = [line.rsplit(" in ", 1)[1] for line in stderr.splitlines()]
    assert delays == ["0.05 s", "0.1 s", "0.2 s", "0.2 s"]  # doubling, capped at max_s


# --- `routeq worker` and `routeq flower` hand the right command over --------------------------


@pytest.fixture
def configured(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """URLs set, so no embedded server starts; nothing connects to them."""
    monkeypatch.setenv("ROUTEQ_DATABASE_URL", "postgresql://postgres:pw123456@127.0.0.1:9/x")
    monkeypatch.setenv("ROUTEQ_BROKER_URL", "redis://127.0.0.1:9/0")


def _capture(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Record what ``routeq worker`` would supervise or exec instead of running it."""
    calls: dict[str, list[str]] = {}

    def fake_supervise(argv: list[str], env: dict[str, str]) -> int:
        calls["supervise"] = list(argv)
        return 3

    def fake_exec(file: str, argv: list[str], env: dict[str, str]) -> None:
        calls["exec"] = list(argv)
        raise SystemExit(0)

    monkeypatch.setattr("routeq.worker.supervisor.supervise", fake_supervise)
    monkeypatch.setattr("os.execvpe", fake_exec)
    return calls


def test_routeq_worker_supervises_celery_and_exits_with_the_supervisors_status(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(app, ["worker", "-Q", "route", "--name", "route@%h"])
    assert result.exit_code == 3, result.output
    assert "exec" not in calls
    argv = calls["supervise"]
    assert argv[1:5] == ["-m", "celery", "-A", "routeq.worker.main"]
    assert argv[argv.index("-n") + 1] == "route@%h"  # the node the health check pings


def test_routeq_worker_no_supervise_execs_celery_as_before(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(app, ["worker", "-Q", "route", "--no-supervise"])
    assert result.exit_code == 0, result.output
    assert "supervise" not in calls
    assert calls["exec"][1:3] == ["-m", "celery"]


def test_routeq_flower_starts_flower_through_the_auth_entry_module(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTEQ_FLOWER_BASIC_AUTH", "admin:a-real-password")
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(app, ["flower", "--port", "5599"])
    assert result.exit_code == 0, result.output
    argv = calls["exec"]
    assert argv[1:3] == ["-m", "routeq.flower_auth"]
    assert "flower" in argv and "--port=5599" in argv
    assert not any("a-real-password" in arg for arg in argv)  # only in the environment
