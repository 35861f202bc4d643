"""The ``routeq`` command's exit statuses, and the one-line reason printed for each failure.

Scripts and CI jobs branch on the status, so it says what kind of thing went wrong: the work ran
and failed (1), the command line or its input was wrong (2, Click's and Typer's own status for
usage errors), the time ran out (3), or the installation is not ready: the configuration is
malformed or the database is not migrated (4). The reasons go to standard error as a few short
lines, never as a traceback: a traceback of ``relation "queries" does not exist`` tells a new
user nothing about the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from routeq.errors import (
    ConfigError,
    InvalidQueryError,
    RouteqError,
    UnknownQueryError,
    UsageError,
)
from routeq.secrets import scrub


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the work ran and failed (documents, a query, checks), or a service broke
    USAGE = 2  # bad arguments or input: nothing was started or changed
    TIMEOUT = 3  # --timeout ran out before the work finished
    SETUP = 4  # malformed configuration, database not migrated, embedded default missing
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, the shell's convention)


class CommandFailed(RouteqError):
    """The command did its job and the job failed: exit 1 with ``reasons`` listed under
    ``summary`` (the first few; the rest are counted)."""

    def __init__(self, summary: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(summary)
        self.summary = summary
        self.reasons = list(reasons)


class SchemaNotReadyError(ConfigError):
    """The configured database has no routeq schema, or an older (or newer) one."""


MAX_REASONS = 10  # reasons listed on stderr; a batch with 800 failures lists ten and counts them


@dataclass(frozen=True)
class Failure:
    """What ``main`` prints and returns for an exception."""

    code: ExitCode
    lines: list[str]


def failure_for(error: BaseException) -> Failure | None:
    """The exit status and message lines for ``error``; None for a bug, which keeps its
    traceback (hiding a bug behind a one-liner would hide it from the person who can fix it)."""
    if isinstance(error, CommandFailed):
        lines = [f"error: {error.summary}"]
        shown = error.reasons[:MAX_REASONS]
        lines += [f"  {_one_line(reason)}" for reason in shown]
        if len(error.reasons) > len(shown):
            lines.append(f"  … and {len(error.reasons) - len(shown)} more")
        return Failure(ExitCode.FAILED, lines)
    if isinstance(error, ConfigError):
        return Failure(ExitCode.SETUP, [f"error: {error}"])
    if isinstance(error, UsageError | InvalidQueryError | UnknownQueryError):
        return Failure(ExitCode.USAGE, [f"error: {error}"])
    if isinstance(error, RouteqError):  # routeq understood what failed: the work did
        return Failure(ExitCode.FAILED, [f"error: {error}"])
    if isinstance(error, TimeoutError):
        return Failure(ExitCode.TIMEOUT, [f"timeout: {error}"])
    return _service_failure(error)


def _service_failure(error: BaseException) -> Failure | None:
    """Database and broker errors that are the deployment's, not a bug in routeq."""
    import kombu.exceptions
    import redis
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.ProgrammingError) and _missing_relation(error):
        return Failure(
            ExitCode.SETUP,
            [
                "error: the database is not migrated for this routeq "
                f"({_driver_message(error)}): run `routeq db upgrade`"
            ],
        )
    if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return Failure(
            ExitCode.FAILED,
            [
                f"error: database error: {_driver_message(error)}; check database_url "
                "(ROUTEQ_DATABASE_URL) and that Postgres is up"
            ],
        )
    if isinstance(
        error, redis.ConnectionError | redis.TimeoutError | kombu.exceptions.OperationalError
    ):
        return Failure(
            ExitCode.FAILED,
            [
                f"error: cannot reach the broker: {_one_line(str(error))}; check broker_url "
                "(ROUTEQ_BROKER_URL) and that Redis is up"
            ],
        )
    return None


def _missing_relation(error: BaseException) -> bool:
    from psycopg import errors as pg

    return isinstance(getattr(error, "orig", None), pg.UndefinedTable | pg.UndefinedColumn)


def _driver_message(error: BaseException) -> str:
    """The driver's first line (SQLAlchemy's wrapper adds the SQL and a link, not the cause)."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error).strip()
    return _one_line(text.splitlines()[0] if text else type(error).__name__)


def _one_line(text: str) -> str:
    return " ".join(scrub(text).split())
