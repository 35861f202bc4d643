"""Waiting for a query to finish by notification rather than by polling.

The transaction that gives a query its final state also sends ``NOTIFY routeq_query_closed``
with the query's id (and nothing else) as payload; Postgres delivers it when that transaction
commits, to every connection listening. A waiter listens *before* it first reads the query's
state, so a close between the read and the wait cannot be missed; it still re-reads now and
then, for a notification lost with a dropped connection.
"""

from __future__ import annotations

import time
import uuid
from types import TracebackType

import psycopg
from sqlalchemy import Engine

QUERY_CLOSED_CHANNEL = "routeq_query_closed"


class ClosedQueries:
    """A connection listening for closed queries. Use as a context manager."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {QUERY_CLOSED_CHANNEL}")

    def wait(self, query_id: uuid.UUID, timeout: float) -> bool:
        """True as soon as ``query_id`` is announced closed; False after ``timeout`` seconds."""
        wanted = str(query_id)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for note in self._conn.notifies(timeout=left, stop_after=1):
                if note.payload == wanted:
                    return True
        return False

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ClosedQueries:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
