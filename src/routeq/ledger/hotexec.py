"""Running the hot path's statements at the driver: compiled once, executed by psycopg alone.

The hot path's statements are built once (``ledger.hotpath``), but SQLAlchemy still does work
at every execution: it looks the statement up in its compiled cache by a key it computes from
the whole statement tree, builds the parameters, expands ``IN`` lists, and wraps the cursor in
a result whose metadata psycopg builds column by column. For a claim or a finish, that costs
about as much as Postgres takes to run the statement (about 0.2 ms here, per statement, of a
worker's CPU and of a query's latency). ``execute`` compiles a statement once per process,
with its ``IN`` lists rendered and its constant parameters bound, and from then on hands the
SQL text and a dictionary of parameters to psycopg's cursor, which prepares it after a few
executions as before.

What stays SQLAlchemy's: the connection and its pool (liveness checks, reset on return), the
transaction (``execute`` begins SQLAlchemy's, so ``commit`` and ``rollback`` mean what they
say), and errors (a driver error is wrapped and a lost connection invalidated exactly as for
any other statement). A connection that anything watches (statement listeners such as the
benchmark's counter, or SQL echo), or that is not psycopg's, gets the ordinary path, so what
a listener sees is what runs: the same statements and round trips, only without the shortcut.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import is_exit_exception

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect: its SQL, the values of its constant parameters,
    and the converters of the parameters a caller passes (few: most types psycopg adapts)."""

    sql: str
    constants: dict[str, Any]
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]


class _Plans:
    """Plans by statement. Statements are the hot path's, built once and kept for the life of
    the process, so they are keyed by identity (and kept alive with their plan)."""

    def __init__(self) -> None:
        self._plans: dict[tuple[int, type[Dialect]], tuple[ClauseElement, _Plan]] = {}
        self._lock = threading.Lock()

    def get(self, statement: ClauseElement, dialect: Dialect) -> _Plan:
        key = (id(statement), type(dialect))
        found = self._plans.get(key)
        if found is not None and found[0] is statement:
            return found[1]
        plan = compile_for(statement, dialect)
        with self._lock:
            self._plans[key] = (statement, plan)
        return plan


def compile_for(statement: ClauseElement, dialect: Dialect) -> _Plan:
    """The statement's plan for ``dialect``. Raises ``ValueError`` for what the driver path
    cannot run: a caller's parameter in an ``IN`` list (its placeholders depend on its value)."""
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    required = [key for key, bind in compiled.binds.items() if bind.required]
    if any(compiled.binds[key].expanding for key in required):
        raise ValueError("a caller's parameter in an IN list: not for the driver path")
    if compiled.insert_prefetch or compiled.update_prefetch:
        # Values SQLAlchemy computes in Python at each execution (a column's default=).
        raise ValueError("a column default computed in Python: not for the driver path")
    # IN lists rendered, one placeholder per value: the hot path's lists are all constants.
    expanded = compiled.construct_expanded_state(dict.fromkeys(required))
    constants = dict(expanded.parameters)
    converters: list[tuple[str, Callable[[Any], Any]]] = []
    for key, bind in compiled.binds.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if key in required:
            del constants[key]  # the caller's, converted at each execution
            if convert is not None:
                converters.append((key, convert))
        elif convert is not None:
            for name in expanded.parameter_expansion.get(key, [key]):
                if constants.get(name) is not None:
                    constants[name] = convert(constants[name])
    sql = expanded.statement
    unbound = set(_PLACEHOLDER.findall(sql)) - constants.keys() - set(required)
    if unbound:
        raise ValueError(f"statement cannot run at the driver: unbound {sorted(unbound)}")
    return _Plan(sql, constants, tuple(converters))


_PLANS = _Plans()


def _watched(conn: Connection) -> bool:
    """Whether something would miss what runs at the driver: statement listeners, SQL echo,
    or a driver other than psycopg."""
    events = conn.dispatch
    return bool(
        events.before_cursor_execute
        or events.after_cursor_execute
        or events.before_execute
        or events.after_execute
        or conn.engine.echo
        or conn.dialect.driver != "psycopg"
    )


def execute(conn: Connection, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
    """Run ``statement`` (one of the hot path's, built once and kept: plans are cached by the
    statement's identity) with ``params`` on ``conn``, in its transaction, and return its
    rows. Fields are read by column name, as on SQLAlchemy's rows (the hot path's column
    names are plain identifiers; these rows have no ``_mapping``)."""
    if _watched(conn):
        return list(conn.execute(statement, params))
    plan = _PLANS.get(statement, conn.dialect)
    values = plan.constants | params
    for key, convert in plan.converters:
        if key in values:
            values[key] = convert(values[key])
    if not conn.in_transaction():
        conn.begin()  # so that the connection's commit commits what runs here
    cursor = conn.connection.driver_connection.cursor(row_factory=namedtuple_row)  # type: ignore[union-attr]
    try:
        cursor.execute(plan.sql, values)
        return cursor.fetchall()  # the hot path's statements all return rows
    except BaseException as error:
        # A driver error is wrapped (and a lost connection invalidated), and an interrupt
        # (KeyboardInterrupt, SystemExit) invalidates the connection it left mid-statement,
        # as SQLAlchemy does for any statement it runs; anything else goes up as it is.
        if isinstance(error, conn.dialect.loaded_dbapi.Error) or is_exit_exception(error):
            conn._handle_dbapi_exception(error, plan.sql, values, cursor, None)
        raise
    finally:
        cursor.close()
