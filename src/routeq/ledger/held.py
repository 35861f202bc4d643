"""A claim held open until the step's next write, so a step claims and finishes in one transaction.

A route decision or a heuristic verdict touches nothing outside the process between its claim
and its finish. Committing the claim first would cost a transaction of its own for what the
finish commits a moment later, so on a message's first delivery the worker keeps the claim's
transaction open and the finish commits both. A call step's claim commits with its first
provider request instead (which must be on the ledger before it is sent).

What the claim's own commit bought was a count: a delivery that crashes its worker still used
one of the hop's deliveries, which is how the delivery cap ends a poison query. A held claim
that dies with its worker is rolled back, so only a message's first delivery is held; Redis
marks a message it restores ``redelivered``, the reconciler marks what it republishes, and
every retry is counted as before (``worker.tasks``). A poison query costs at most one uncounted
delivery. docs/performance.md has the trade.

While a claim is held, any other write of the same ledger commits it first: a write on another
connection that touched the claimed rows would otherwise wait for a lock its own thread holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.engine import Connection


class HeldClaim:
    """The open transaction of at most one claimed hop (a ledger's, so one per worker thread)."""

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._hop_id: int | None = None

    def hold(self, conn: Connection, hop_id: int) -> None:
        """Keep ``conn``'s open transaction, which claimed hop ``hop_id``."""
        self.commit()
        self._conn, self._hop_id = conn, hop_id

    def holds(self, hop_id: int) -> bool:
        return self._conn is not None and self._hop_id == hop_id

    def commit(self) -> None:
        """Commit the held claim on its own (the step is about to do something else)."""
        conn, self._conn, self._hop_id = self._conn, None, None
        if conn is None:
            return
        try:
            conn.commit()
        finally:
            with suppress(Exception):  # a broken connection is dropped by the pool
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The held transaction, to finish the step in: committed with what the caller wrote,
        or rolled back with the claim when the caller fails (that delivery goes uncounted;
        the retry that follows is not held)."""
        conn, self._conn, self._hop_id = self._conn, None, None
        assert conn is not None, "no claim is held"
        try:
            yield conn
            conn.commit()
        except BaseException:
            with suppress(Exception):
                conn.rollback()
            raise
        finally:
            with suppress(Exception):
                conn.close()
