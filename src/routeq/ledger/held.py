"""A claim held open until the step's next write, so a step claims and finishes in one transaction.

A route decision or a heuristic verdict touches nothing outside the process between its claim
and its finish. Committing the claim first would cost a transaction of its own for what the
finish commits a moment later, so on a message's first delivery the worker keeps the claim's
transaction open and the finish commits both. A call step's claim commits with its first
provider request instead (which must be on the ledger before it is sent; with budgets to
reserve against, or when the step reads the ledger first, the claim commits on its own).

What the claim's own commit bought was a count: a delivery that crashes its worker still used
one of the hop's deliveries, which is how the delivery cap ends a poison query. A held claim
that dies with its worker is rolled back, so only a message's first delivery is held; Redis
marks a message it restores ``redelivered``, the reconciler marks what it republishes, and
every retry is counted as before (``worker.tasks``). A poison query costs at most one uncounted
delivery. docs/performance.md has the trade.

While a claim is held, any other use of the same ledger commits it first (asynchronously, as a
claim alone always commits): a write on another connection that touched the claimed rows would
otherwise wait for a lock its own thread holds, and a read would not see the claim. A duplicate
delivery's claim, meanwhile, waits for the held one to end (milliseconds; at most its lease, by
the idle timeout the claim sets) and then finds the hop finished or owned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.engine import Connection


class HeldClaim:
    """The open transaction of at most one claimed hop per thread (a thread pool's tasks may
    share a ledger; each thread's claim is its own)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def _state(self) -> tuple[Connection, int] | None:
        state: tuple[Connection, int] | None = getattr(self._local, "state", None)
        return state

    def _take(self) -> Connection | None:
        state, self._local.state = self._state, None
        return None if state is None else state[0]

    def hold(self, conn: Connection, hop_id: int) -> None:
        """Keep ``conn``'s open transaction, which claimed hop ``hop_id``."""
        self.commit()
        self._local.state = (conn, hop_id)

    def holds(self, hop_id: int) -> bool:
        state = self._state
        return state is not None and state[1] == hop_id

    def commit(self) -> None:
        """Commit the held claim on its own (the step is about to do something else), as a
        claim alone always commits: asynchronously (``ledger.hotpath``)."""
        conn = self._take()
        if conn is None:
            return
        try:
            conn.exec_driver_sql(_ASYNC_COMMIT)
            conn.commit()
        finally:
            with suppress(Exception):  # a broken connection is dropped by the pool
                conn.close()

    def discard(self) -> None:
        """Roll the held claim back, as if its worker had died (the ledger is closing)."""
        conn = self._take()
        if conn is not None:
            with suppress(Exception):
                conn.close()  # rolls back

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """The held transaction, to finish the step in: committed with what the caller wrote,
        or rolled back with the claim when the caller fails (that delivery goes uncounted;
        the retry that follows is not held)."""
        conn = self._take()
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


# Labelled as the hot path's asynchronous commits are (``async_commit``).
_ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true) AS async_commit"
