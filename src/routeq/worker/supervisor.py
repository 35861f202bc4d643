"""Keep one Celery worker running: ``routeq worker`` runs it as a child and restarts it.

A Celery worker's main process can die on its own while the queue still needs a consumer: a
Redis restart with tasks in flight can end it with an ``AttributeError`` from kombu's
connection-error path (``restore_unacked_once``), and a pool child killed during start-up makes
the main process exit. Compose and Kubernetes restart a dead container, but a bare
``routeq worker`` (on a VM, under the local stack) would leave its queue unconsumed. So the
supervisor restarts a child that exits on its own, with a capped backoff so a worker that
cannot start (broker down) does not spin. A child that exits 4 refused its configuration at
start (a missing trained artifact, say): restarting cannot help, so the supervisor exits 4 too.

The operator's stop signals (SIGTERM, SIGINT, SIGQUIT) are forwarded to the child and end the
supervision: the supervisor then waits for the child's warm (or cold) shutdown and exits with
its status, so ``docker stop``, Kubernetes and ``routeq.local.stop_workers`` behave as they did
when ``routeq worker`` exec'ed Celery. The child stays in the supervisor's process group, so a
signal to the group (the SIGKILL backstops) still reaches every process.

The policy (backoff, what counts as a stop, which signal to forward) is plain functions and a
small class, so it is tested without starting anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

from routeq.exitcodes import ExitCode

#: The signals an operator (or an orchestrator) uses to stop a Celery worker.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


@dataclass
class Backoff:
    """Seconds to wait before each restart: ``initial_s`` doubling up to ``max_s``.

    A child that ran at least ``healthy_after_s`` was working, so its exit starts the sequence
    afresh: an occasional crash costs one short pause, while a worker that dies at start-up
    (broker unreachable, bad config) is retried ever less often instead of in a tight loop.
    """

    initial_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    healthy_after_s: float = 60.0
    _next_s: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError("need 0 <= initial_s <= max_s and factor >= 1")
        self._next_s = self.initial_s

    def delay(self, ran_for_s: float) -> float:
        """The pause before restarting a child that ran ``ran_for_s`` seconds."""
        if ran_for_s >= self.healthy_after_s:
            self._next_s = self.initial_s
        delay = self._next_s
        self._next_s = min(self.max_s, delay * self.factor)
        return delay


def should_restart(returncode: int, stop_requested: bool) -> bool:
    """Whether a child that exited with ``returncode`` (negative: killed by that signal) is
    started again.

    Not after the operator asked to stop: the exit is the shutdown they wanted. Not after a
    clean exit (0) either: Celery exits 0 only when told to stop, e.g. by a remote ``shutdown``
    control command from Flower, and restarting would defeat it. Not after status 4
    (``ExitCode.SETUP``) either: the worker refused its configuration at start (a missing or
    corrupt trained artifact, ``routeq.worker.main``), and would refuse it again; the operator,
    or an orchestrator's crash loop, must see that. Anything else (an
    unrecoverable error, a non-zero status, a signal nobody forwarded such as the OOM killer's
    SIGKILL) is a crash, and the queue still needs its consumer.
    """
    return not stop_requested and returncode not in (0, ExitCode.SETUP)


def exit_status(returncode: int) -> int:
    """The supervisor's own exit status for a child's ``returncode``: a shell's convention
    (128 + signal number) for a child killed by a signal, since an exit status cannot be
    negative."""
    return 128 - returncode if returncode < 0 else returncode


def signal_to_forward(signum: int, earlier: Sequence[int]) -> int:
    """The signal to send the child when the supervisor receives ``signum``, after ``earlier``.

    The first SIGINT is forwarded as SIGTERM. Ctrl-C in a terminal sends SIGINT to the whole
    foreground process group, so the child already has its own SIGINT; a second one would turn
    Celery's warm shutdown into a cold one that cancels running calls. SIGTERM starts the same
    warm shutdown and Celery ignores it once one is under way, so it is right whether or not the
    terminal also reached the child. Later SIGINTs are forwarded as they are: pressing Ctrl-C
    again asks for the cold shutdown. SIGTERM and SIGQUIT are forwarded unchanged.
    """
    if signum == signal.SIGINT and signal.SIGINT not in earlier:
        return signal.SIGTERM
    return signum


def describe_exit(returncode: int) -> str:
    """How a child ended, for the restart log line: its status or the signal that killed it."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


def restart_message(
    pid: int, returncode: int, ran_for_s: float, delay_s: float, restarts: int
) -> str:
    """The one stderr line per restart. It names the pid, how the child ended and when it comes
    back, never the command line or the environment (which hold the broker and database URLs
    with their passwords)."""
    return (
        f"routeq worker: celery worker (pid {pid}) {describe_exit(returncode)} after "
        f"{ran_for_s:.1f} s; restart {restarts} in {delay_s:g} s"
    )


class Supervisor:
    """Run ``argv`` as a child, restarting it per :func:`should_restart` and :class:`Backoff`.

    One instance runs once: :meth:`run` installs the stop-signal handlers, and restores the
    previous ones before it returns.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        backoff: Backoff | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.backoff = backoff or Backoff()
        self.log = log or sys.stderr
        self.restarts = 0
        self.child: subprocess.Popen[bytes] | None = None
        self.received: list[int] = []  # stop signals, in order
        self._forwarded = 0  # how many of ``received`` reached the child

    @property
    def stop_requested(self) -> bool:
        return bool(self.received)

    def run(self) -> int:
        """Supervise until the operator stops the worker or it exits cleanly; return the
        supervisor's exit status (see :func:`exit_status`)."""
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in STOP_SIGNALS}
        try:
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self) -> int:
        while True:
            if self.stop_requested:  # stopped between two children: nothing to shut down
                return 128 + self.received[0]
            # Inherited stdout/stderr (the worker's log stays where it was) and process group.
            self.child = subprocess.Popen(self.argv, env=self.env)
            started = time.monotonic()
            self._forward_pending()  # a stop signal that came while spawning
            returncode = self._wait(self.child)
            ran_for = time.monotonic() - started
            if not should_restart(returncode, self.stop_requested):
                return exit_status(returncode)
            delay = self.backoff.delay(ran_for)
            self.restarts += 1
            message = restart_message(self.child.pid, returncode, ran_for, delay, self.restarts)
            print(message, file=self.log, flush=True)
            self.child = None
            self._sleep_unless_stopped(delay)

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for ``child``, reaping any other child on the way.

        As PID 1 in a container the supervisor inherits the orphans of a killed Celery main
        process (its pool children); waiting on any pid keeps them from lingering as zombies.
        """
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:  # already reaped elsewhere: ask Popen
                return child.wait()
            if pid == child.pid:
                child.returncode = os.waitstatus_to_exitcode(status)
                return child.returncode

    def _sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop signal arrives (in small steps: a signal
        handler does not cut a ``time.sleep`` short, and a stop must not wait out a 30 s
        backoff)."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        self._forward_pending()

    def _forward_pending(self) -> None:
        child = self.child
        while self._forwarded < len(self.received):
            if child is None or child.returncode is not None:
                return  # no child to stop: the loop sees stop_requested and ends
            index = self._forwarded
            forwarded = signal_to_forward(self.received[index], self.received[:index])
            self._forwarded += 1
            try:
                os.kill(child.pid, forwarded)
            except ProcessLookupError:  # already gone (an exited child is a zombie until reaped)
                return


def supervise(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    backoff: Backoff | None = None,
    log: TextIO | None = None,
) -> int:
    """Run ``argv`` under a :class:`Supervisor`; return the exit status to leave with."""
    return Supervisor(argv, env, backoff=backoff, log=log).run()
