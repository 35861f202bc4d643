"""What the steps need from the ledger, as a typed interface.

``StepLedger`` is every read and write the pipeline's steps make; ``WorkerLedger`` adds what the
reconciler and the task wrappers use. ``routeq.ledger.repository.Ledger`` implements both on
Postgres. Reading this file is reading the steps' whole contract with storage: each method is
one transaction (but a claim made with ``hold``, which the step's next write commits), and
writes that close a hop are fenced by the claiming delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any, Protocol

from routeq.budgets import Charge
from routeq.records import (
    CallOutput,
    ChildQuery,
    Claim,
    ClaimedHop,
    Finished,
    HopResult,
    HopStatus,
    LiveHop,
    NewQuery,
    NextHop,
    QueryInput,
    QueryOutcome,
    QueryView,
    RequestDone,
)


class StepLedger(Protocol):
    def claim(
        self,
        query_id: uuid.UUID,
        seq: int,
        *,
        lease_s: float,
        max_deliveries: int,
        worker: str | None = None,
        with_answer: bool = False,
        hold: bool = False,
    ) -> Claim:
        """Own a queued hop (or one whose lease expired) for one delivery, reading the query
        (and with ``with_answer`` the previous hop's answer) in the same round trip. ``hold``:
        leave the claim's transaction open for the step's next write to commit."""
        ...

    def commit_held_claim(self) -> None:
        """Commit a held claim the step left open (it ended without a write)."""
        ...

    def query_input(self, query_id: uuid.UUID) -> QueryInput: ...

    def children(self, parent_id: uuid.UUID) -> list[ChildQuery]: ...

    def call_output(self, query_id: uuid.UUID, seq: int) -> CallOutput: ...

    def final_answer(self, query_id: uuid.UUID) -> str | None: ...

    def hop_tier(self, query_id: uuid.UUID, seq: int) -> str | None: ...

    def hop_age(self, query_id: uuid.UUID, seq: int) -> tuple[str | None, float] | None: ...

    def renew(self, hop: ClaimedHop, lease_s: float) -> bool: ...

    def batch_of(self, document_id: int) -> str | None: ...

    def release(self, hop: ClaimedHop, *, waited: bool = False) -> bool: ...

    def hop_id(self, query_id: uuid.UUID, seq: int) -> int: ...

    def last_answer_seq(self, query_id: uuid.UUID, before_seq: int) -> int | None: ...

    def count_earlier_queries(self, user: str, before: uuid.UUID, *, at_most: int) -> int:
        """How many ``answer`` queries ``user`` submitted before the query ``before``, counted
        up to ``at_most`` (a cap keeps it cheap for a user with a long history)."""
        ...

    def backlog(self, query_id: uuid.UUID) -> list[NextHop]:
        """Queued hops of the query's family that may have lost their message."""
        ...

    def view(self, query_id: uuid.UUID) -> QueryView: ...

    def begin_request(
        self,
        hop: ClaimedHop,
        *,
        try_number: int,
        model: str,
        input_price: Decimal,
        output_price: Decimal,
        max_cost: Decimal | None = None,
        lease_s: float | None = None,
        charges: Sequence[Charge] = (),
        reserve: Decimal = ...,
        max_query_cost: Decimal | None = None,
    ) -> int:
        """Record a provider request as pending before it is sent; renew the lease; reserve
        its worst case against its budgets (all or none: ``BudgetExceededError``)."""
        ...

    def finish_request(
        self,
        hop: ClaimedHop,
        request_id: int,
        *,
        outcome: str,
        latency_ms: int,
        cost: Decimal = ...,
        input_tokens: int = 0,
        output_tokens: int = 0,
        tokens_estimated: bool = False,
        http_status: int | None = None,
        error: str | None = None,
        lease_s: float | None = None,
        settle_budgets: bool = False,
    ) -> None:
        """Complete a request with its cost (not fenced: money spent is spent), settling its
        budget reservations."""
        ...

    def finish_hop(
        self,
        hop: ClaimedHop,
        *,
        status: HopStatus,
        result: HopResult,
        next_hop: NextHop | None = None,
        outcome: QueryOutcome | None = None,
        children: Sequence[NewQuery] = (),
        shadow: NewQuery | None = None,
        requests_done: Sequence[RequestDone] = (),
        closes_alone: bool = False,
    ) -> Finished:
        """Close the hop and take the next step in one fenced transaction; create ``shadow``
        when that closed the query. ``requests_done`` are written first, outside the fence;
        ``closes_alone``: the query has no parent and keeps its texts."""
        ...

    def finish_requests(self, done: Sequence[RequestDone]) -> None:
        """Complete requests whose step ended without finishing its hop."""
        ...

    def fail_exhausted(
        self, hop: ClaimedHop, outcome: QueryOutcome | None, next_hop: NextHop | None
    ) -> Finished: ...

    def fail_query(self, query_id: uuid.UUID, reason: str) -> Finished: ...


class WorkerLedger(StepLedger, Protocol):
    def submit(self, items: Sequence[NewQuery]) -> list[Any]: ...

    def reconciler_lock(self) -> AbstractContextManager[bool]: ...

    def expire_pending_requests(self) -> int: ...

    def live_hops(self, grace_s: float, limit: int) -> list[LiveHop]: ...

    def hop_states(
        self, keys: Sequence[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], Any]: ...

    def orphans(self, grace_s: float, limit: int) -> list[uuid.UUID]: ...

    def fold_metrics(self) -> None: ...

    def erase_texts(self, *, older_than_days: float | None, held_s: float, limit: int) -> int: ...

    def record_reconcile_run(
        self, *, republished: int, settled: int, unknown_requests: int, duration_ms: int
    ) -> None: ...

    def close(self) -> None: ...

    def dispose(self) -> None:
        """Forget pooled connections without closing them (a forked child's inherited ones)."""
        ...


LedgerPort = WorkerLedger
