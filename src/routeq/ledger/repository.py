"""The ledger's one repository: every read and write of the pipeline as a typed method.

Each method is one transaction, except that a claim made with ``hold`` stays open until the
step's next write (``ledger.held``). Writes that finish a hop are *fenced* by the delivery
number that claimed it (``attempts``): if a newer delivery has claimed the hop since, the older
one's result is discarded, so a redelivered message can never record a call twice or escalate
twice. Spend is recorded per provider request, outside the fence, because money spent is spent.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import (
    Engine,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from routeq.budgets import Charge
from routeq.errors import BudgetExceededError, DeliverySupersededError, UnknownQueryError
from routeq.ledger import hotexec
from routeq.ledger.bulk import unnest_insert, unnest_params
from routeq.ledger.held import HeldClaim
from routeq.ledger.hotpath import (
    answer_of,
    begin_request_statement,
    claim_statement,
    claimed_hop,
    finish_statement,
    lease_end,
    lease_expired,
    query_input_statement,
    statement_now,
)
from routeq.ledger.hotpath import query_input as claimed_query
from routeq.ledger.hotpath import seconds as _seconds
from routeq.ledger.models import (
    BatchDocument,
    BudgetReservation,
    BudgetUse,
    Hop,
    ProviderRequest,
    Query,
    ReconcilerStats,
)
from routeq.ledger.notify import QUERY_CLOSED_CHANNEL
from routeq.ledger.sql import named
from routeq.records import (
    FINAL_QUERY_STATUSES,
    LIVE_HOP_STATUSES,
    LIVE_QUERY_STATUSES,
    CallOutput,
    ChatMessage,
    ChildQuery,
    Claim,
    ClaimedHop,
    ClaimState,
    Finished,
    HopKind,
    HopResult,
    HopStatus,
    HopView,
    LiveHop,
    NewQuery,
    NextHop,
    QueryInput,
    QueryOutcome,
    QueryRole,
    QueryStatus,
    QueryView,
    RequestDone,
    RequestOutcome,
    Submitted,
)

queries = cast(Table, Query.__table__)
hops = cast(Table, Hop.__table__)
requests = cast(Table, ProviderRequest.__table__)
reconciler_stats = cast(Table, ReconcilerStats.__table__)
budget_use = cast(Table, BudgetUse.__table__)
batch_documents = cast(Table, BatchDocument.__table__)
budget_reservations = cast(Table, BudgetReservation.__table__)

# The name a refusal by ``[spend] max_cost_per_query`` carries in place of a budget's.
MAX_COST_PER_QUERY = "max_cost_per_query"


# The "period" of a budget over all time starts here (not '-infinity', which Python's
# datetime cannot hold).
ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _period_start(period: str) -> Any:
    """The start of a budget's current period on the database's clock (UTC)."""
    if period == "total":
        return sa.literal(ALL_TIME, sa.DateTime(timezone=True))
    utc = func.timezone("UTC", statement_now())
    return func.timezone("UTC", func.date_trunc(period, utc))


def _budget_row(charge: Charge) -> list[Any]:
    return [
        budget_use.c.budget == charge.budget,
        budget_use.c.subject == charge.subject,
        budget_use.c.period_start == _period_start(charge.period),
    ]


def _budget_period(charge: Charge, **values: Any) -> Any:
    """The insert of the budget's row for its current period (with ``values``)."""
    return pg_insert(budget_use).values(
        budget=charge.budget,
        subject=charge.subject,
        period_start=_period_start(charge.period),
        limit_usd=charge.limit_usd,
        **values,
    )


def _reserve(conn: Connection, charge: Charge, amount: Decimal) -> Any:
    """Reserve ``amount`` against the budget's current period, only if it stays within the
    limit; the period's start, or ``BudgetExceededError``. The row lock taken by the update
    makes concurrent reservations queue, so two cannot both take what is left."""
    conn.execute(_budget_period(charge).on_conflict_do_nothing())
    row = conn.execute(
        update(budget_use)
        .where(*_budget_row(charge))
        .values(
            reserved=budget_use.c.reserved + amount,
            limit_usd=charge.limit_usd,  # a changed limit applies from the next call
            updated_at=statement_now(),
        )
        .returning(budget_use.c.period_start, budget_use.c.spent, budget_use.c.reserved)
    ).one()
    if row.spent + row.reserved <= charge.limit_usd:
        return row.period_start
    left = charge.limit_usd - row.spent - (row.reserved - amount)
    raise BudgetExceededError(
        f"budget {charge.budget!r} for {charge.subject!r} cannot afford this call: "
        f"${row.spent:.6f} spent and ${row.reserved - amount:.6f} reserved of "
        f"${charge.limit_usd:.6f} this {charge.period if charge.period != 'total' else 'budget'}"
        f"; the call could cost up to ${amount:.6f}",
        budget=charge.budget,
        remaining=max(left, Decimal(0)),
    )  # the transaction rolls back: the reservation above is undone


def _check_query_cost(
    conn: Connection, query_id: uuid.UUID, amount: Decimal, limit: Decimal
) -> None:
    spent = conn.execute(select(queries.c.total_cost).where(queries.c.id == query_id)).scalar_one()
    if spent + amount > limit:
        raise BudgetExceededError(
            f"max_cost_per_query (${limit:.6f}) cannot afford this call: the query has spent "
            f"${spent:.6f} and the call could cost up to ${amount:.6f}",
            budget=MAX_COST_PER_QUERY,
            remaining=max(limit - spent, Decimal(0)),
        )


def _text_hash() -> Any:
    """The SHA-256 of a query's text, kept when the text is erased (hex)."""
    digest = func.sha256(func.convert_to(queries.c.text, "UTF8"))
    return func.coalesce(queries.c.text_sha256, func.encode(digest, "hex"))


def _erase_family(conn: Connection, root_id: uuid.UUID, answer_seq: int | None) -> None:
    """Privacy ``none``, as a query closes: erase the prompt and every text of it and its
    pieces (answers, judge replies and reasons), keeping hashes, token counts and figures.
    The query's final answer (``answer_seq``'s output) stays for the producer to read, until
    the reconciler erases it after ``privacy.answer_hold_s``."""
    family = select(queries.c.id).where(
        or_(queries.c.id == root_id, queries.c.parent_id == root_id)
    )
    conn.execute(
        update(queries)
        .where(queries.c.id.in_(family))
        .values(text_sha256=_text_hash(), text="", messages=None, cache_key=None)
    )
    conn.execute(
        update(queries)
        .where(queries.c.parent_id == root_id)
        .values(final_answer=None, final_reason=ERASED_REASON, texts_erased_at=statement_now())
    )
    kept = and_(hops.c.query_id == root_id, hops.c.seq == (answer_seq or -1))
    conn.execute(
        update(hops)
        .where(hops.c.query_id.in_(family), ~kept, hops.c.output.is_not(None))
        .values(output=None)
    )
    _erase_hop_texts(conn, family, outputs=False)


ERASED_REASON = "texts erased (privacy)"


def _erase_hop_texts(conn: Connection, family: Any, *, outputs: bool = True) -> None:
    """The free texts of a family's hops: a judge's reply and reasons can quote the prompt
    or the answer, and they travel on into the next call's reason and errors. Route hops say
    only which rule or policy decided, and keep their reasons."""
    values: dict[str, Any] = {"reason": None, "error": None}
    if outputs:
        values["output"] = None
    conn.execute(
        update(hops)
        .where(hops.c.query_id.in_(family), hops.c.kind != HopKind.ROUTE.value)
        .values(**values)
    )


def _settle(conn: Connection, request_id: int, cost: Decimal) -> None:
    """Move a finished attempt's reservations to its real cost, locking the budget rows in the
    order reservations lock them."""
    conn.execute(
        sa.text(
            "SELECT 1 FROM budget_use b JOIN budget_reservations r ON b.budget = r.budget "
            "AND b.subject = r.subject AND b.period_start = r.period_start "
            "WHERE r.request_id = :request ORDER BY b.budget, b.subject FOR UPDATE OF b"
        ),
        {"request": request_id},
    )
    conn.execute(
        sa.text(
            "UPDATE budget_use b SET reserved = b.reserved - r.amount, spent = b.spent + :cost, "
            "updated_at = now() FROM budget_reservations r WHERE r.request_id = :request "
            "AND b.budget = r.budget AND b.subject = r.subject "
            "AND b.period_start = r.period_start"
        ),
        {"cost": cost, "request": request_id},
    )
    conn.execute(delete(budget_reservations).where(budget_reservations.c.request_id == request_id))


@dataclass(frozen=True)
class JudgedAnswer:
    """One tier's answer to a query and the verdict its judge hop gave on it: ``judge_score``
    is the LLM judge's 1-10 (None when the heuristic checks decided alone), ``source`` who
    decided (``heuristic``, ``summary-check``, ``llm``)."""

    seq: int
    tier: str
    model: str | None
    response: str
    passed: bool
    judge_score: float | None
    source: str
    rating: str | None = None  # a person's feedback on it: "down", "up", or None
    via: str | None = None  # "shadow" or "rerun": given by that query of the same prompt


@dataclass(frozen=True)
class JudgedQuery:
    """A closed user query with every answer of it that a judge gave a verdict on, in hop
    order (a query escalated from cheap to frontier has both). ``domain`` is the metadata's
    ``domain`` when it is a string, else "". ``explored``: its route hop sent it to
    ``route_tier`` by exploration (``routing.explore_share``, recorded as ``explore_share``)
    in place of the policy's ``policy_choice``. ``policy`` and ``policy_version`` name what
    routed it (so a calibration's realised share can be read off an export)."""

    id: uuid.UUID
    text: str
    messages: list[ChatMessage] | None
    domain: str
    created_at: datetime
    answers: list[JudgedAnswer]
    route_tier: str | None = None
    explored: bool = False
    policy_choice: str | None = None
    explore_share: float | None = None
    policy: str | None = None
    policy_version: str | None = None


def _judged_answer(answer: dict[str, Any]) -> JudgedAnswer:
    """One object of ``labelled_answers``' ``answers`` array."""
    score = answer["judge_score"]
    return JudgedAnswer(
        seq=int(answer["seq"]),
        tier=answer["tier"],
        model=answer["model"],
        response=answer["response"],
        passed=bool(answer["passed"]),
        judge_score=None if score is None else float(score),
        source=answer["source"] or "",
        rating=answer.get("rating"),
        via=answer.get("via"),
    )


# pg_try_advisory_lock key of the reconciler ("routeq" in ASCII): one run at a time.
RECONCILER_LOCK_KEY = 0x726F75746571


UNKNOWN_OUTCOME_ERROR = (
    "outcome unknown: the worker stopped while the request was in flight; it may have been "
    "answered and paid (up to max_cost)"
)


def _mark_unknown(conn: Connection, *where: Any) -> int:
    """Requests still ``pending`` whose delivery is gone become ``unknown``."""
    result = conn.execute(
        update(requests)
        .where(requests.c.outcome == RequestOutcome.PENDING.value, *where)
        .values(outcome=RequestOutcome.UNKNOWN.value, error=UNKNOWN_OUTCOME_ERROR)
    )
    return int(result.rowcount or 0)


def _insert_next_hop(conn: Connection, next_hop: NextHop) -> None:
    """Queue the next hop; a redelivery that planned the same hop inserts nothing."""
    conn.execute(
        pg_insert(hops)
        .values(
            query_id=next_hop.query_id,
            seq=next_hop.seq,
            kind=next_hop.kind.value,
            tier=next_hop.tier,
            model=next_hop.model,
            reason=next_hop.reason,
            status=HopStatus.QUEUED.value,
        )
        .on_conflict_do_nothing(constraint="uq_hops_query_seq")
    )


def _query_vocabulary(item: NewQuery) -> dict[str, Any]:
    """The role, relation and chat columns of a new query."""
    return {
        "role": item.role.value,
        "messages": item.messages,
        "params": item.params,
        "shadow_of": item.shadow_of,
        "rerun_of": item.rerun_of,
        "api_key_id": item.api_key_id,
        "privacy": item.privacy,
    }


def _query_row(query_id: uuid.UUID, item: NewQuery) -> dict[str, Any]:
    """Every column of a new query's row (the same keys for every query, so that many can go
    in one multi-row INSERT)."""
    return {
        "id": query_id,
        "text": item.text,
        "input_tokens": item.input_tokens,
        "metadata": item.metadata,
        "user_id": item.user,
        "idempotency_key": item.idempotency_key,
        "task": item.task,
        "parent_id": item.parent_id,
        "cache_key": item.cache_key,
        "batch_document_id": item.batch_document_id,
        "status": QueryStatus.QUEUED.value,
        **_query_vocabulary(item),
    }


def _route_hop_row(query_id: uuid.UUID) -> dict[str, Any]:
    """A query's first hop: always its route, at seq 1 (so its first call, at seq 2, is never
    an escalation; the metrics rollup's hop trigger relies on it, migration 0018)."""
    return {
        "query_id": query_id,
        "seq": 1,
        "kind": HopKind.ROUTE.value,
        "status": HopStatus.QUEUED.value,
    }


@functools.cache
def _bulk_query_insert(columns: tuple[str, ...]) -> TextClause:
    return unnest_insert(
        queries, columns, on_conflict="(idempotency_key) DO NOTHING", returning="id"
    )


@functools.cache
def _bulk_route_hop_insert() -> TextClause:
    """Route hops for the queries of one array (``c0``): seq 1, queued (``_route_hop_row``)."""
    return text(
        "INSERT INTO hops (query_id, seq, kind, status) "
        f"SELECT c0, 1, '{HopKind.ROUTE.value}', '{HopStatus.QUEUED.value}' "
        "FROM unnest(CAST(:c0 AS uuid[])) AS rows (c0)"
    )


def submit_queries(conn: Connection, items: Sequence[NewQuery]) -> list[Submitted]:
    """Insert queries with their route hops in two statements, however many there are (one
    array per column, ``ledger.bulk``), and a third to read idempotency-key matches, which
    return the existing query, as ``submit_query`` does, in the order the items came."""
    if not items:
        return []
    ids = [uuid.uuid4() for _ in items]
    rows = [_query_row(query_id, item) for query_id, item in zip(ids, items, strict=True)]
    columns = tuple(rows[0])
    inserted = set(
        conn.execute(_bulk_query_insert(columns), unnest_params(queries, columns, rows)).scalars()
    )
    if inserted:
        conn.execute(_bulk_route_hop_insert(), {"c0": [q for q in ids if q in inserted]})
    keys = {item.idempotency_key for q, item in zip(ids, items, strict=True) if q not in inserted}
    existing = {}
    if keys:
        existing = {
            row.idempotency_key: row
            for row in conn.execute(
                select(queries.c.idempotency_key, queries.c.id, hops.c.status)
                .outerjoin(hops, and_(hops.c.query_id == queries.c.id, hops.c.seq == 1))
                .where(queries.c.idempotency_key.in_(keys))
            )
        }
    results = []
    for query_id, item in zip(ids, items, strict=True):
        if query_id in inserted:
            results.append(Submitted(query_id, created=True))
        else:
            # A resubmission after a failed publish must not strand the query: re-publish
            # while the route hop is still queued (a duplicate message is discarded by the
            # claim).
            match = existing[item.idempotency_key]
            queued = match.status == HopStatus.QUEUED.value
            results.append(Submitted(match.id, created=False, route_queued=queued))
    return results


def submit_query(conn: Connection, item: NewQuery) -> Submitted:
    """Insert a query with its route hop; an idempotency-key match returns the existing one."""
    query_id = uuid.uuid4()
    statement = (
        pg_insert(queries)
        .values(**_query_row(query_id, item))
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(queries.c.id)
    )
    inserted = conn.execute(statement).scalar_one_or_none()
    if inserted is None:
        existing = conn.execute(
            select(queries.c.id).where(queries.c.idempotency_key == item.idempotency_key)
        ).scalar_one()
        route_status = conn.execute(
            select(hops.c.status).where(hops.c.query_id == existing, hops.c.seq == 1)
        ).scalar_one_or_none()
        # A resubmission after a failed publish must not strand the query: re-publish while
        # the route hop is still queued (a duplicate message is discarded by the claim).
        return Submitted(
            existing, created=False, route_queued=route_status == HopStatus.QUEUED.value
        )
    conn.execute(insert(hops).values(**_route_hop_row(query_id)))
    return Submitted(query_id, created=True)


def _reuse_finished_piece(conn: Connection, child: NewQuery) -> bool:
    """Create ``child`` already done when a finished query had the same ``cache_key`` (the same
    piece text, role and spec): retrying a split document whose other parts succeeded must
    not pay for those parts again. Returns False when there is nothing to reuse."""
    if child.cache_key is None:
        return False
    earlier = conn.execute(
        select(queries.c.id, queries.c.final_answer, queries.c.final_tier, queries.c.final_model)
        .where(queries.c.cache_key == child.cache_key, queries.c.status == QueryStatus.DONE.value)
        .order_by(queries.c.finished_at.desc())
        .limit(1)
    ).one_or_none()
    if earlier is None:
        return False
    conn.execute(
        insert(queries).values(
            id=uuid.uuid4(),
            text=child.text,
            input_tokens=child.input_tokens,
            metadata=child.metadata,
            user_id=child.user,
            task=child.task,
            parent_id=child.parent_id,
            cache_key=child.cache_key,
            batch_document_id=child.batch_document_id,
            **_query_vocabulary(child),
            status=QueryStatus.DONE.value,
            final_answer=earlier.final_answer,
            final_tier=earlier.final_tier,
            final_model=earlier.final_model,
            final_reason=f"reused the summary of query {earlier.id} (same text, role and spec)",
            finished_at=statement_now(),
        )
    )
    return True


def _waiting_combine(conn: Connection, parent_id: uuid.UUID) -> NextHop | None:
    """The split document's queued combine hop, if none of its pieces is still live.

    Pieces finish concurrently; a lock on the document serialises their checks, so the last
    one to commit sees every other piece finished and publishes the combine hop (an earlier
    one may too: the combine step tolerates duplicates). The lock is an advisory one on the
    document's id, held to the commit, not a row lock: with ``SELECT ... FOR UPDATE`` on the
    document's row, two pieces' transactions each waited for the other there (in two of five
    runs of the demo); Postgres ended one as a deadlock, and its step ran, and paid its judge
    call, again. An advisory lock conflicts with nothing else a transaction holds.
    """
    key = sa.literal(f"routeq.combine:{parent_id}", sa.Text)
    conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    live = conn.execute(
        select(func.count())
        .select_from(queries)
        .where(
            queries.c.parent_id == parent_id,
            queries.c.status.not_in(FINAL_QUERY_STATUSES),
        )
    ).scalar_one()
    if live:
        return None
    seq = conn.execute(
        select(func.max(hops.c.seq)).where(
            hops.c.query_id == parent_id,
            hops.c.kind == HopKind.COMBINE.value,
            hops.c.status == HopStatus.QUEUED.value,
        )
    ).scalar_one_or_none()
    return None if seq is None else NextHop(parent_id, seq, HopKind.COMBINE)


def _next_hop(row: Any) -> NextHop:
    """A hop row (with its query's role) as a hop to publish; a shadow's goes in the background."""
    background = row.role == QueryRole.SHADOW.value
    return NextHop(
        row.query_id, row.seq, HopKind(row.kind), row.tier, row.model, background=background
    )


def family_backlog(conn: Connection, root_id: uuid.UUID) -> list[NextHop]:
    """Queued hops of a query and of its pieces, plus its combine hop once no piece is live."""
    family = select(queries.c.id).where(
        or_(queries.c.id == root_id, queries.c.parent_id == root_id)
    )
    rows = conn.execute(
        select(hops.c.query_id, hops.c.seq, hops.c.kind, hops.c.tier, hops.c.model, queries.c.role)
        .join(queries, queries.c.id == hops.c.query_id)
        .where(
            hops.c.query_id.in_(family),
            hops.c.status == HopStatus.QUEUED.value,
            hops.c.kind != HopKind.COMBINE.value,  # a combine hop waits for its pieces
        )
        .order_by(hops.c.id)
    ).all()
    backlog = [_next_hop(r) for r in rows]
    combine = _waiting_combine(conn, root_id)
    return backlog + ([combine] if combine is not None else [])


def _superseded(hop: ClaimedHop) -> DeliverySupersededError:
    return DeliverySupersededError(
        f"hop {hop.seq} of query {hop.query_id}: delivery {hop.delivery} no longer owns it; "
        "not calling the model again"
    )


def _record_request(conn: Connection, done: RequestDone) -> None:
    """A request's outcome and cost on its row, its hop and its query (and its budgets). A
    request whose row is gone (committed asynchronously, then lost with a database crash), or
    that was completed already (a retry after an ambiguous commit), adds nothing, so the
    ledger's sums stay exact."""
    found = conn.execute(
        update(requests)
        .where(
            requests.c.id == done.request_id,
            # Once: a completion retried after an ambiguous commit finds it completed.
            requests.c.outcome.in_((RequestOutcome.PENDING.value, RequestOutcome.UNKNOWN.value)),
        )
        .values(
            outcome=done.outcome,
            http_status=done.http_status,
            error=done.error,
            input_tokens=done.input_tokens,
            output_tokens=done.output_tokens,
            tokens_estimated=done.tokens_estimated,
            cost=done.cost,
            latency_ms=done.latency_ms,
        )
        .returning(requests.c.id)
    ).first()
    if found is None:
        return
    if done.cost:
        conn.execute(
            update(hops).where(hops.c.id == done.hop.id).values(cost=hops.c.cost + done.cost)
        )
        conn.execute(
            update(queries)
            .where(queries.c.id == done.hop.query_id)
            .values(total_cost=queries.c.total_cost + done.cost)
        )
    if done.settle_budgets:
        _settle(conn, done.request_id, done.cost)


class Ledger:
    """Typed access to the hop ledger."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # For single statements: no BEGIN and COMMIT round trips around them.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # A claim whose transaction the step's next write commits (``claim(hold=True)``).
        self._held = HeldClaim()

    # Every other use of the database commits a held claim first (``ledger.held``).

    def _begin(self) -> AbstractContextManager[Connection]:
        self._held.commit()
        return self.engine.begin()

    def _connect(self) -> Connection:
        self._held.commit()
        return self.engine.connect()

    def _autoconnect(self) -> Connection:
        self._held.commit()
        return self._autocommit.connect()

    def _statement_for(self, hop: ClaimedHop) -> AbstractContextManager[Connection]:
        """Where a hop's single statement runs: in its held claim's transaction, committing
        both, or on its own."""
        return self._held.transaction() if self._held.holds(hop.id) else self._autoconnect()

    def _transaction_for(self, hop: ClaimedHop) -> AbstractContextManager[Connection]:
        """Where a hop's transaction runs: its held claim's, or a new one."""
        return self._held.transaction() if self._held.holds(hop.id) else self._begin()

    def commit_held_claim(self) -> None:
        """Commit a claim still held when its step ends another way than by a write."""
        self._held.commit()

    # -- producers -------------------------------------------------------------------------------

    def submit(self, items: Sequence[NewQuery]) -> list[Submitted]:
        """Insert queries with their route hop in one transaction; reuse idempotency-key matches."""
        with self._begin() as conn:
            return submit_queries(conn, items)

    # -- workers: claim --------------------------------------------------------------------------

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
        """Take ownership of a hop (queued, or running with an expired lease) for one delivery,
        and read what the step needs: the query's input, and with ``with_answer`` the previous
        hop's answer (a judge's). One statement on the happy path (``ledger.hotpath``).

        The claim holds the hop for ``lease_s`` seconds; each provider attempt renews it
        (``begin_request``). Requests an earlier delivery left ``pending`` are marked
        ``unknown`` here: that delivery is gone, and its call may or may not have been paid.

        ``hold``: a successful claim's transaction stays open, to be committed by the step's
        next write (its first provider request or its finish), for a message's first delivery
        only (``ledger.held`` says why).
        """
        params = {
            "claim_query": query_id,
            "claim_seq": seq,
            "claim_lease_s": lease_s,
            "claim_worker": worker,
        }
        if not hold:
            with self._autoconnect() as conn:
                return self._claim(conn, claim_statement(with_answer), params, max_deliveries)
        conn = self._connect()
        held = False
        try:
            params["claim_idle_ms"] = str(max(1000, int(lease_s * 1000)))
            claim = self._claim(conn, claim_statement(with_answer, True), params, max_deliveries)
            if claim.state is ClaimState.CLAIMED and claim.query is not None:
                assert claim.hop is not None
                self._held.hold(conn, claim.hop.id)
                held = True
            else:
                conn.commit()  # not claimed, exhausted, or unreadable: nothing to hold
            return claim
        finally:
            if not held:
                conn.close()  # after a failure, this rolls back

    def _claim(
        self, conn: Connection, statement: Any, params: dict[str, Any], max_deliveries: int
    ) -> Claim:
        query_id, seq = params["claim_query"], params["claim_seq"]
        rows = hotexec.execute(conn, statement, params)
        if not rows:
            return self._why_not_claimed(conn, query_id, seq)
        (row,) = rows
        hop = claimed_hop(row)
        if hop.delivery > 1:
            _mark_unknown(conn, requests.c.hop_id == hop.id, requests.c.delivery < hop.delivery)
        if hop.delivery - row.waits > max_deliveries:
            conn.execute(
                update(hops)
                .where(
                    hops.c.id == hop.id,
                    hops.c.attempts == hop.delivery,
                    hops.c.status == HopStatus.RUNNING.value,
                )
                .values(
                    status=HopStatus.FAILED.value,
                    finished_at=statement_now(),
                    lease_expires_at=None,
                    error=f"gave up after {max_deliveries} deliveries (the worker kept dying "
                    "or timing out on this hop)",
                )
            )
            return Claim(ClaimState.EXHAUSTED, hop)
        try:
            query = claimed_query(row)
        except (ValueError, RecursionError) as error:
            # Claimed, but its step cannot run: the step fails with the reason and hands
            # the hop back, and the delivery cap ends it as for any hop that always fails.
            reason = f"the query's stored input cannot be read ({type(error).__name__})"
            return Claim(ClaimState.CLAIMED, hop, unreadable=reason)
        return Claim(ClaimState.CLAIMED, hop, query=query, answer=answer_of(row))

    def _why_not_claimed(self, conn: Connection, query_id: uuid.UUID, seq: int) -> Claim:
        row = conn.execute(
            select(
                hops.c.status,
                func.extract("epoch", lease_end() - statement_now()).label("remaining"),
            ).where(hops.c.query_id == query_id, hops.c.seq == seq)
        ).one_or_none()
        if row is None:
            return Claim(ClaimState.MISSING)
        if row.status == HopStatus.RUNNING.value:
            return Claim(ClaimState.BUSY, retry_in=max(1.0, float(row.remaining or 0) + 0.5))
        return Claim(ClaimState.FINISHED)

    def release(self, hop: ClaimedHop, *, waited: bool = False) -> bool:
        """Hand a running hop back to the queue after an unexpected error in its step, so the
        retried delivery can claim it at once instead of waiting out the lease. Fenced: only
        while this delivery still owns the hop (a stale delivery failing must not hand back a
        hop another worker is running). The delivery count is kept: the cap on deliveries
        still bounds a hop that fails every time. ``waited``: the delivery only waited for
        provider capacity, and is not counted by the cap (``hops.waits``)."""
        extra = {"waits": hops.c.waits + 1} if waited else {}
        with self._begin() as conn:
            released = conn.execute(
                update(hops)
                .where(
                    hops.c.id == hop.id,
                    hops.c.attempts == hop.delivery,
                    hops.c.status == HopStatus.RUNNING.value,
                )
                .values(status=HopStatus.QUEUED.value, lease_expires_at=None, **extra)
                .returning(hops.c.id)
            ).one_or_none()
            if released is not None:
                _mark_unknown(
                    conn, requests.c.hop_id == hop.id, requests.c.delivery == hop.delivery
                )
        return released is not None

    def release_claimed_by(self, node_prefix: str) -> int:
        """Hand back every running hop claimed by worker nodes named ``node_prefix...``, which
        the caller knows are dead (the local stack after killing its own workers): their hops
        can be taken at once instead of after their leases. Their in-flight requests become
        ``unknown``."""
        if not node_prefix:
            return 0
        pattern = node_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._begin() as conn:
            released = conn.execute(
                update(hops)
                .where(
                    hops.c.status == HopStatus.RUNNING.value,
                    hops.c.claimed_by.like(pattern),
                )
                .values(status=HopStatus.QUEUED.value, lease_expires_at=None)
                .returning(hops.c.id)
            ).scalars()
            ids = list(released)
            if ids:
                _mark_unknown(conn, requests.c.hop_id.in_(ids))
        return len(ids)

    # -- workers: reads --------------------------------------------------------------------------

    def query_input(self, query_id: uuid.UUID) -> QueryInput:
        with self._autoconnect() as conn:
            row = conn.execute(query_input_statement(), {"read_query": query_id}).one_or_none()
        if row is None:
            raise UnknownQueryError(f"no query with id {query_id}")
        return claimed_query(row, claimed=False)

    def children(self, parent_id: uuid.UUID) -> list[ChildQuery]:
        """The pieces of a split document (parts, then combines), oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                select(
                    queries.c.id,
                    queries.c.status,
                    queries.c.role,
                    queries.c.task,
                    queries.c.final_answer,
                    queries.c.final_reason,
                )
                .where(queries.c.parent_id == parent_id)
                .order_by(queries.c.created_at, queries.c.id)
            ).all()
        return [
            ChildQuery(
                r.id,
                QueryStatus(r.status),
                QueryRole(r.role),
                dict(r.task or {}),
                r.final_answer,
                r.final_reason,
            )
            for r in rows
        ]

    def call_output(self, query_id: uuid.UUID, seq: int) -> CallOutput:
        with self._connect() as conn:
            row = conn.execute(
                select(
                    hops.c.seq, hops.c.tier, hops.c.model, hops.c.output, hops.c.finish_reason
                ).where(hops.c.query_id == query_id, hops.c.seq == seq)
            ).one()
        return CallOutput(row.seq, row.tier, row.model, row.output, row.finish_reason)

    def final_answer(self, query_id: uuid.UUID) -> str | None:
        """The answer a finished query gave (a shadow's judge compares with it)."""
        with self._connect() as conn:
            return cast(
                str | None,
                conn.execute(
                    select(queries.c.final_answer).where(queries.c.id == query_id)
                ).scalar_one_or_none(),
            )

    def hop_age(self, query_id: uuid.UUID, seq: int) -> tuple[str | None, float] | None:
        """A hop's tier and how long ago it was created (seconds, on the database's clock):
        how long it has waited for its provider. None for a hop that does not exist."""
        with self._connect() as conn:
            row = conn.execute(
                select(
                    hops.c.tier, func.extract("epoch", statement_now() - hops.c.created_at)
                ).where(hops.c.query_id == query_id, hops.c.seq == seq)
            ).one_or_none()
        return None if row is None else (row[0], float(row[1]))

    def renew(self, hop: ClaimedHop, lease_s: float) -> bool:
        """Extend this delivery's lease (while it waits for provider capacity); False when a
        newer delivery owns the hop."""
        with self._begin() as conn:
            return self._renew(conn, hop, lease_s)

    def batch_of(self, document_id: int) -> str | None:
        """The id of the batch a batch document belongs to (for budgets by batch)."""
        with self._connect() as conn:
            found = conn.execute(
                select(batch_documents.c.batch_id).where(batch_documents.c.id == document_id)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def hop_tier(self, query_id: uuid.UUID, seq: int) -> str | None:
        """The tier a hop calls (None for a hop that does not exist)."""
        with self._connect() as conn:
            return conn.execute(
                select(hops.c.tier).where(hops.c.query_id == query_id, hops.c.seq == seq)
            ).scalar_one_or_none()

    def hop_id(self, query_id: uuid.UUID, seq: int) -> int:
        with self._connect() as conn:
            return int(
                conn.execute(
                    select(hops.c.id).where(hops.c.query_id == query_id, hops.c.seq == seq)
                ).scalar_one()
            )

    def last_answer_seq(self, query_id: uuid.UUID, before_seq: int) -> int | None:
        """The latest call hop before ``before_seq`` that produced an answer, if any."""
        with self._connect() as conn:
            return conn.execute(
                select(func.max(hops.c.seq)).where(
                    hops.c.query_id == query_id,
                    hops.c.seq < before_seq,
                    hops.c.kind == HopKind.CALL.value,
                    hops.c.status == HopStatus.DONE.value,
                    hops.c.output.is_not(None),
                )
            ).scalar_one_or_none()

    def count_earlier_queries(self, user: str, before: uuid.UUID, *, at_most: int) -> int:
        """How many ``answer`` queries ``user`` submitted before ``before``, up to ``at_most``.

        "Before" is ``(created_at, id)``: queries submitted in one transaction share their
        ``created_at``, and the id orders them (arbitrarily, but the same for every query), so
        of a user's first ``n`` queries exactly ``n`` count fewer than ``n`` before them."""
        this = select(queries.c.created_at, queries.c.id).where(queries.c.id == before).subquery()
        earlier = (
            select(queries.c.id)
            .join(
                this,
                tuple_(queries.c.created_at, queries.c.id) < tuple_(this.c.created_at, this.c.id),
            )
            .where(queries.c.user_id == user, queries.c.role == QueryRole.ANSWER.value)
            .limit(at_most)
            .subquery()
        )
        with self._connect() as conn:
            return int(conn.execute(select(func.count()).select_from(earlier)).scalar_one())

    def backlog(self, query_id: uuid.UUID) -> list[NextHop]:
        """Hops that wait in ``queued`` for the query, or for the whole split document it
        belongs to, and may have no message: after a crash between a commit and its publish,
        a duplicate delivery (or a re-run of the batch) publishes them again. A duplicate
        message is harmless: the claim lets one delivery work and turns the others away."""
        with self._begin() as conn:
            root = conn.execute(
                select(func.coalesce(queries.c.parent_id, queries.c.id)).where(
                    queries.c.id == query_id
                )
            ).scalar_one_or_none()
            return [] if root is None else family_backlog(conn, root)

    # -- the reconciler --------------------------------------------------------------------------

    @contextmanager
    def reconciler_lock(self) -> Iterator[bool]:
        """A session-level advisory lock held for one reconciler run: yields False when another
        run (another worker, ``routeq reconcile`` by hand) holds it, so only one runs at a time."""
        with self._connect() as conn:
            got = bool(
                conn.execute(select(func.pg_try_advisory_lock(RECONCILER_LOCK_KEY))).scalar_one()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(select(func.pg_advisory_unlock(RECONCILER_LOCK_KEY)))
                    conn.commit()

    def live_hops(self, grace_s: float, limit: int) -> list[LiveHop]:
        """Live hops untouched for ``grace_s`` seconds, oldest first: the ones whose message may
        be lost. A combine hop still waiting for live pieces is left out (it is published by
        the last piece to finish). Served by the partial index on live hops."""
        pieces = queries.alias("pieces")  # not the hop's own query, joined below
        pieces_live = (
            select(pieces.c.id)
            .where(
                pieces.c.parent_id == hops.c.query_id,
                pieces.c.status.not_in(FINAL_QUERY_STATUSES),
            )
            .exists()
        )
        with self._connect() as conn:
            rows = conn.execute(
                select(
                    hops.c.query_id,
                    hops.c.seq,
                    hops.c.kind,
                    hops.c.tier,
                    hops.c.model,
                    hops.c.status,
                    hops.c.attempts,
                    lease_expired().label("expired"),
                    queries.c.role,
                )
                .join(queries, queries.c.id == hops.c.query_id)
                .where(
                    hops.c.status.in_(LIVE_HOP_STATUSES),
                    func.coalesce(hops.c.started_at, hops.c.created_at)
                    < statement_now() - _seconds(grace_s),
                    ~and_(
                        hops.c.kind == HopKind.COMBINE.value,
                        hops.c.status == HopStatus.QUEUED.value,
                        pieces_live,
                    ),
                )
                .order_by(hops.c.created_at)
                .limit(limit)
            ).all()
        return [
            LiveHop(
                _next_hop(r),
                HopStatus(r.status),
                r.attempts,
                bool(r.expired),
            )
            for r in rows
        ]

    def hop_states(self, keys: Sequence[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], Any]:
        """(status, attempts) of the given hops now, to see which changed since a first read."""
        if not keys:
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                select(hops.c.query_id, hops.c.seq, hops.c.status, hops.c.attempts).where(
                    tuple_(hops.c.query_id, hops.c.seq).in_(list(keys))
                )
            ).all()
        return {(r.query_id, r.seq): (r.status, r.attempts) for r in rows}

    def expire_pending_requests(self) -> int:
        """Requests left ``pending`` by a delivery that is gone (its hop finished, was claimed
        again, or its lease ran out) become ``unknown``. Returns how many."""
        gone = (
            select(hops.c.id)
            .where(
                hops.c.id == requests.c.hop_id,
                or_(
                    hops.c.status != HopStatus.RUNNING.value,
                    hops.c.attempts != requests.c.delivery,
                    lease_expired(),
                ),
            )
            .exists()
        )
        with self._begin() as conn:
            return _mark_unknown(conn, gone)

    def orphans(self, grace_s: float, limit: int) -> list[uuid.UUID]:
        """Unfinished queries with no live hop and no live piece: their last step ended without
        taking the next one (a crash between marking a hop exhausted and moving the query on,
        or an error there). Nothing will ever deliver a message for them."""
        live_hop = (
            select(hops.c.id)
            .where(hops.c.query_id == queries.c.id, hops.c.status.in_(LIVE_HOP_STATUSES))
            .exists()
        )
        pieces = queries.alias("pieces")
        live_piece = (
            select(pieces.c.id)
            .where(
                pieces.c.parent_id == queries.c.id,
                pieces.c.status.not_in(FINAL_QUERY_STATUSES),
            )
            .exists()
        )
        with self._connect() as conn:
            return list(
                conn.execute(
                    select(queries.c.id)
                    .where(
                        # IN, not NOT IN: the partial index on live queries serves it
                        queries.c.status.in_(LIVE_QUERY_STATUSES),
                        queries.c.created_at < statement_now() - _seconds(grace_s),
                        ~live_hop,
                        ~live_piece,
                    )
                    .order_by(queries.c.created_at)
                    .limit(limit)
                ).scalars()
            )

    def erase_texts(self, *, older_than_days: float | None, held_s: float, limit: int) -> int:
        """The reconciler's privacy job: erase every text of queries created more than
        ``older_than_days`` ago (retention; None: off), and the final answers of privacy
        ``none`` queries closed more than ``held_s`` ago. Hashes, token counts, costs and
        verdicts stay. At most ``limit`` queries a run, oldest first; how many it erased."""
        erased: list[uuid.UUID] = []
        with self._begin() as conn:
            # Roots only: a piece's texts go with its document (``_erase_family``), and a
            # piece of a document still open is still needed by its combine.
            held = (
                select(queries.c.id)
                .where(
                    queries.c.privacy == "none",
                    queries.c.parent_id.is_(None),
                    queries.c.texts_erased_at.is_(None),
                    queries.c.finished_at < statement_now() - _seconds(held_s),
                )
                .order_by(queries.c.finished_at)
                .limit(limit)
            )
            erased += list(conn.execute(held).scalars())
            if older_than_days is not None:
                old = (
                    select(queries.c.id)
                    .where(
                        queries.c.parent_id.is_(None),
                        queries.c.texts_erased_at.is_(None),
                        queries.c.created_at < statement_now() - _seconds(older_than_days * 86400),
                        queries.c.status.in_(FINAL_QUERY_STATUSES),
                    )
                    .order_by(queries.c.created_at)
                    .limit(limit)
                )
                erased += list(conn.execute(old).scalars())
            if not erased:
                return 0
            family = select(queries.c.id).where(
                or_(queries.c.id.in_(erased), queries.c.parent_id.in_(erased))
            )
            conn.execute(
                update(queries)
                .where(queries.c.id.in_(family))
                .values(
                    text_sha256=_text_hash(),
                    text="",
                    messages=None,
                    final_answer=None,
                    # the reason may quote the judge, who may have quoted the text
                    final_reason=ERASED_REASON,
                    cache_key=None,  # nothing is left to reuse
                    texts_erased_at=statement_now(),
                )
            )
            _erase_hop_texts(conn, family)
            conn.execute(
                text("UPDATE feedback SET comment = NULL WHERE query_id = ANY(:ids)"),
                {"ids": erased},
            )
        return len(set(erased))

    def fail_query(self, query_id: uuid.UUID, reason: str) -> Finished:
        """Close an unfinished query as failed with ``reason``, reading nothing of its input, so
        that it works even for a query whose metadata or text crashes the steps. ``publish``
        holds a split document's combine hop, when this was its last piece; ``closed`` says
        whether this call closed the query (False: it was final already)."""
        with self._begin() as conn:
            closed, combine = self._close_query(
                conn, query_id, QueryOutcome(QueryStatus.FAILED, reason)
            )
        return Finished(True, [] if combine is None else [combine], closed=closed)

    def fold_metrics(self) -> None:
        """Fold the metrics rollup's pending deltas into its totals (``metrics.fold()``), as a
        scrape does: run by the reconciler too, so the deltas stay small where nobody scrapes."""
        with self._begin() as conn:
            conn.execute(named("metrics_fold"))

    def record_reconcile_run(
        self, *, republished: int, settled: int, unknown_requests: int, duration_ms: int
    ) -> None:
        """Add one run to the reconciler's running totals (a single row)."""
        with self._begin() as conn:
            conn.execute(
                pg_insert(reconciler_stats)
                .values(
                    id=1,
                    runs=1,
                    republished=republished,
                    settled=settled,
                    unknown_requests=unknown_requests,
                    last_run_at=statement_now(),
                    last_duration_ms=duration_ms,
                )
                .on_conflict_do_update(
                    index_elements=["id"],
                    set_={
                        "runs": reconciler_stats.c.runs + 1,
                        "republished": reconciler_stats.c.republished + republished,
                        "settled": reconciler_stats.c.settled + settled,
                        "unknown_requests": reconciler_stats.c.unknown_requests + unknown_requests,
                        "last_run_at": statement_now(),
                        "last_duration_ms": duration_ms,
                    },
                )
            )

    # -- workers: writes -------------------------------------------------------------------------

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
        reserve: Decimal = Decimal(0),
        max_query_cost: Decimal | None = None,
    ) -> int:
        """Put a provider request on the ledger *before* it is sent, as ``pending``, and renew
        the hop's lease for the attempt. Returns the request's id (sent as a header, so the
        provider's logs and the ledger can be matched).

        With ``charges`` (budgets) or ``max_query_cost``, the attempt first reserves
        ``reserve`` (its worst case) against each budget and checks the query's spend, in the
        same transaction: all or nothing. When one cannot afford it, nothing is written but the
        budget's ``refused`` count, and ``BudgetExceededError`` says which and what is left."""
        if lease_s is not None and not charges and max_query_cost is None:
            # A held claim commits with this request (asynchronously, as the claim would have).
            with self._statement_for(hop) as conn:
                rows = hotexec.execute(
                    conn,
                    begin_request_statement(),
                    {
                        "req_hop": hop.id,
                        "req_delivery": hop.delivery,
                        "req_lease_s": lease_s,
                        "req_try": try_number,
                        "req_model": model,
                        "req_input_price": input_price,
                        "req_output_price": output_price,
                        "req_max_cost": max_cost,
                    },
                )
            if not rows:
                raise _superseded(hop)
            return int(rows[0].id)
        try:
            with self._begin() as conn:
                return self._begin_request(
                    conn, hop, try_number, model, input_price, output_price, max_cost, lease_s,
                    charges, reserve, max_query_cost,
                )  # fmt: skip
        except BudgetExceededError as refused:
            for charge in charges:
                if charge.budget == refused.budget:
                    with self._begin() as conn:
                        conn.execute(  # the row may be new: its insert was rolled back
                            _budget_period(charge, refused=1).on_conflict_do_update(
                                index_elements=["budget", "subject", "period_start"],
                                set_={"refused": budget_use.c.refused + 1},
                            )
                        )
            raise

    def _begin_request(
        self,
        conn: Connection,
        hop: ClaimedHop,
        try_number: int,
        model: str,
        input_price: Decimal,
        output_price: Decimal,
        max_cost: Decimal | None,
        lease_s: float | None,
        charges: Sequence[Charge],
        reserve: Decimal,
        max_query_cost: Decimal | None,
    ) -> int:
        if lease_s is not None and not self._renew(conn, hop, lease_s):
            raise _superseded(hop)
        if max_query_cost is not None:
            _check_query_cost(conn, hop.query_id, reserve, max_query_cost)
        # In one order (settling locks them in the same one): two transactions that lock the
        # same rows in different orders can deadlock.
        charges = sorted(charges, key=lambda c: (c.budget, c.subject))
        reserved = [_reserve(conn, charge, reserve) for charge in charges]
        request_id = conn.execute(
            insert(requests)
            .values(
                hop_id=hop.id,
                delivery=hop.delivery,
                try_number=try_number,
                model=model,
                outcome=RequestOutcome.PENDING.value,
                input_price_per_mtok=input_price,
                output_price_per_mtok=output_price,
                max_cost=max_cost,
            )
            .returning(requests.c.id)
        ).scalar_one()
        if reserved:
            conn.execute(
                insert(budget_reservations),
                [
                    {
                        "request_id": request_id,
                        "budget": charge.budget,
                        "subject": charge.subject,
                        "period_start": period_start,
                        "amount": reserve,
                    }
                    for charge, period_start in zip(charges, reserved, strict=True)
                ],
            )
        return int(request_id)

    def finish_request(
        self,
        hop: ClaimedHop,
        request_id: int,
        *,
        outcome: str,
        latency_ms: int,
        cost: Decimal = Decimal(0),
        input_tokens: int = 0,
        output_tokens: int = 0,
        tokens_estimated: bool = False,
        http_status: int | None = None,
        error: str | None = None,
        lease_s: float | None = None,
        settle_budgets: bool = False,
    ) -> None:
        """Complete a request's row and add its cost to the hop and the query, atomically.
        ``settle_budgets``: the attempt reserved against budgets; its reservations become its
        real cost, in the same transaction.

        Not fenced: money spent is spent, even by a delivery that has been superseded (or whose
        request the reconciler already marked ``unknown``). ``lease_s`` renews the hop's lease
        for the pause and the attempt that follow a failed try."""
        done = RequestDone(
            hop, request_id, outcome, latency_ms, cost, input_tokens, output_tokens,
            tokens_estimated, http_status, error, settle_budgets,
        )  # fmt: skip
        with self._begin() as conn:
            _record_request(conn, done)
            if lease_s is not None:
                self._renew(conn, hop, lease_s)

    def finish_requests(self, done: Sequence[RequestDone]) -> None:
        """Complete requests whose hop was not finished (its step failed after the call)."""
        if done:
            with self._begin() as conn:
                for request in done:
                    _record_request(conn, request)

    @staticmethod
    def _renew(conn: Connection, hop: ClaimedHop, lease_s: float) -> bool:
        """Extend the lease while this delivery still owns the hop; False when it does not."""
        result = conn.execute(
            update(hops)
            .where(
                hops.c.id == hop.id,
                hops.c.attempts == hop.delivery,
                hops.c.status == HopStatus.RUNNING.value,
            )
            .values(lease_expires_at=statement_now() + _seconds(lease_s))
        )
        return bool(result.rowcount)

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
        """Close a hop and take the next step in one transaction, fenced by the delivery.

        ``closes_alone``: the caller knows the query has no parent and keeps its texts, so
        closing it touches its row only (the common case, done in one statement).

        ``requests_done``: the step's completed provider requests not yet written (its
        successful calls), written first and outside the fence: when a newer delivery owns
        the hop, they are still committed (money spent is spent) and nothing else is.

        ``children`` are pieces of a split document, created with their route hops. A combine
        hop in ``next_hop`` is not published: it waits until the last piece is finished, and
        the step that finishes it publishes the combine hop (see ``_close_query``).
        ``shadow`` is created, with its route hop, only if this transaction closes the query:
        in the same commit, so a sampled answer gets exactly one shadow, whatever crashes.
        Returns a falsy ``Finished``, writing nothing, when a newer delivery owns the hop.
        """
        one_request = len(requests_done) == 1 and not requests_done[0].settle_budgets
        closes_simply = outcome is None or (
            closes_alone
            and shadow is None
            and next_hop is None
            and outcome.from_query is None
            and outcome.answer_seq != hop.seq
        )
        if (
            closes_simply
            and not children
            and (next_hop is None or next_hop.kind is not HopKind.COMBINE)
            and (one_request or not requests_done)
        ):
            # The happy path (route -> call, call -> judge, judge -> close): one statement.
            statement, params = finish_statement(
                hop,
                status,
                result.columns(),
                next_hop,
                requests_done[0] if one_request else None,
                outcome,
            )
            with self._statement_for(hop) as conn:
                (row,) = hotexec.execute(conn, statement, params)
            publish = [next_hop] if row.owned and next_hop is not None else []
            return Finished(bool(row.owned), publish, closed=bool(row.closed))
        with self._transaction_for(hop) as conn:
            for done in requests_done:
                _record_request(conn, done)
            finished = self._finish(conn, hop, status, result, next_hop, outcome, children)
            if finished.closed and shadow is not None:
                shadow_id = submit_query(conn, shadow).query_id
                finished.publish.append(NextHop(shadow_id, 1, HopKind.ROUTE, background=True))
            return finished

    def _finish(
        self,
        conn: Connection,
        hop: ClaimedHop,
        status: HopStatus,
        result: HopResult,
        next_hop: NextHop | None,
        outcome: QueryOutcome | None,
        children: Sequence[NewQuery],
    ) -> Finished:
        owned = conn.execute(
            update(hops)
            .where(
                hops.c.id == hop.id,
                hops.c.attempts == hop.delivery,
                hops.c.status.in_(LIVE_HOP_STATUSES),
            )
            .values(
                status=status.value,
                finished_at=statement_now(),
                lease_expires_at=None,
                **result.columns(),
            )
            .returning(hops.c.id)
        ).one_or_none()
        if owned is None:  # the fence wrote nothing; what spend came with it is committed
            return Finished(owned=False)
        routes = []
        for child in children:
            if not _reuse_finished_piece(conn, child):
                routes.append(NextHop(submit_query(conn, child).query_id, 1, HopKind.ROUTE))
        moved, closed = self._move_on(conn, hop, next_hop, outcome)
        publish = routes + moved
        if children and next_hop is not None and next_hop.kind is HopKind.COMBINE and not routes:
            publish.append(next_hop)  # every piece was summarised before: combine right away
        return Finished(True, publish, closed=closed)

    def fail_exhausted(
        self, hop: ClaimedHop, outcome: QueryOutcome | None, next_hop: NextHop | None
    ) -> Finished:
        """After the delivery cap failed a hop: move the query on (escalate or fail it)."""
        with self._begin() as conn:
            publish, closed = self._move_on(conn, hop, next_hop, outcome)
        return Finished(True, publish, closed=closed)

    def _move_on(
        self,
        conn: Connection,
        hop: ClaimedHop,
        next_hop: NextHop | None,
        outcome: QueryOutcome | None,
    ) -> tuple[list[NextHop], bool]:
        """The hops to publish, and whether the query was closed here."""
        publish: list[NextHop] = []
        closed = False
        if next_hop is not None:
            _insert_next_hop(conn, next_hop)
            if next_hop.kind is not HopKind.COMBINE:
                publish.append(next_hop)
        if outcome is not None:
            closed, combine = self._close_query(conn, hop.query_id, outcome)
            if combine is not None:
                publish.append(combine)
        return publish, closed

    def _close_query(
        self, conn: Connection, query_id: uuid.UUID, outcome: QueryOutcome
    ) -> tuple[bool, NextHop | None]:
        """Record the query's outcome: whether it closed the query (False when the query was
        final already), and, when it is the last piece of a split document to finish, the
        document's waiting combine hop, to be published after the commit."""
        final: dict[str, Any] = {
            "status": outcome.status.value,
            "final_reason": outcome.reason,
            "finished_at": statement_now(),
        }
        if outcome.answer_seq is not None:
            answer = conn.execute(
                select(hops.c.output, hops.c.tier, hops.c.model).where(
                    hops.c.query_id == query_id, hops.c.seq == outcome.answer_seq
                )
            ).one()
            final.update(
                final_answer=answer.output, final_tier=answer.tier, final_model=answer.model
            )
        if outcome.from_query is not None:
            source = conn.execute(
                select(queries.c.final_answer, queries.c.final_tier, queries.c.final_model).where(
                    queries.c.id == outcome.from_query
                )
            ).one()
            final.update(
                final_answer=source.final_answer,
                final_tier=source.final_tier,
                final_model=source.final_model,
            )
        closed = conn.execute(
            update(queries)
            .where(queries.c.id == query_id, queries.c.status.not_in(FINAL_QUERY_STATUSES))
            .values(**final)
            .returning(
                queries.c.parent_id,
                queries.c.privacy,
                # Delivered at commit to whoever waits for it (``ledger.notify``): the id only.
                func.pg_notify(QUERY_CLOSED_CHANNEL, sa.cast(queries.c.id, sa.Text)),
            )
        ).one_or_none()
        if closed is None:
            return False, None
        if closed.parent_id is None:
            if closed.privacy == "none":
                _erase_family(conn, query_id, outcome.answer_seq)
            return True, None
        return True, _waiting_combine(conn, closed.parent_id)

    # -- readers ---------------------------------------------------------------------------------

    def view(self, query_id: uuid.UUID) -> QueryView:
        """A query with its hops, for ``Client.status`` and ``handle.wait``."""
        with self._connect() as conn:
            # Not the metadata: a view never shows it, and a poison value (nested too deep to
            # decode) must not stop anyone from seeing how the query ended.
            row = conn.execute(
                select(
                    queries.c.id,
                    queries.c.status,
                    queries.c.final_answer,
                    queries.c.final_tier,
                    queries.c.final_model,
                    queries.c.final_reason,
                    queries.c.total_cost,
                    queries.c.created_at,
                    queries.c.finished_at,
                    queries.c.role,
                ).where(queries.c.id == query_id)
            ).one_or_none()
            if row is None:
                raise UnknownQueryError(
                    f"no query with id {query_id}; check the id, or the database routeq points at"
                )
            hop_rows = conn.execute(
                select(hops).where(hops.c.query_id == query_id).order_by(hops.c.seq)
            ).all()
        return QueryView(
            id=row.id,
            status=QueryStatus(row.status),
            role=QueryRole(row.role),
            answer=row.final_answer,
            final_tier=row.final_tier,
            final_model=row.final_model,
            final_reason=row.final_reason,
            total_cost=row.total_cost,
            created_at=row.created_at,
            finished_at=row.finished_at,
            hops=[
                HopView(
                    seq=h.seq,
                    kind=HopKind(h.kind),
                    tier=h.tier,
                    model=h.model,
                    status=HopStatus(h.status),
                    attempts=h.attempts,
                    input_tokens=h.input_tokens,
                    output_tokens=h.output_tokens,
                    tokens_estimated=h.tokens_estimated,
                    cost=h.cost,
                    latency_ms=h.latency_ms,
                    judge_score=h.judge_score,
                    passed=h.passed,
                    reason=h.reason,
                    error=h.error,
                    policy=h.policy,
                    policy_version=h.policy_version,
                    policy_score=h.policy_score,
                    details=dict(h.details or {}),
                )
                for h in hop_rows
            ],
        )

    def statuses(self, query_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        with self._connect() as conn:
            rows = conn.execute(
                select(queries.c.id, queries.c.status).where(queries.c.id.in_(list(query_ids)))
            ).all()
        return {row.id: row.status for row in rows}

    def judged_queries(
        self, *, since: datetime | None = None, limit: int | None = None, batch: int = 500
    ) -> Iterator[JudgedQuery]:
        """Closed user queries created at or after ``since`` that have at least one judged
        answer, oldest first, at most ``limit`` of them (the ``labelled_answers`` query says
        precisely which answers count). Streamed through a server-side cursor, ``batch`` rows
        at a time, so a ledger of millions of queries never sits in memory; the connection is
        held until the iterator is exhausted or closed."""
        with self._connect() as conn:
            rows = conn.execution_options(stream_results=True, yield_per=batch).execute(
                named("labelled_answers"), {"since": since, "limit": limit}
            )
            for row in rows:
                yield JudgedQuery(
                    id=row.query_id,
                    text=row.text,
                    messages=row.messages,
                    domain=row.domain,
                    created_at=row.created_at,
                    answers=[_judged_answer(answer) for answer in row.answers],
                    route_tier=row.route_tier,
                    explored=bool(row.explored),
                    policy_choice=row.policy_choice if row.explored else None,
                    explore_share=row.explore_share if row.explored else None,
                    policy=row.policy,
                    policy_version=row.policy_version,
                )

    def close(self) -> None:
        """Close every pooled connection (a claim still held is rolled back, as if its worker
        had died)."""
        self._held.discard()
        self.engine.dispose()

    def dispose(self) -> None:
        """Forget pooled connections without closing them: a forked child must not close the
        sockets its parent still uses."""
        self.engine.dispose(close=False)

    def ping(self) -> None:
        with self._connect() as conn:
            conn.execute(text("select 1"))
