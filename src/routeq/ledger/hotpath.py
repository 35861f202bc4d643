"""The statements of the hot path, each one round trip: claiming a hop (the claim, the query
marked running, and what the step reads: the query's input, and for a judge hop the answer it
judges), and putting a provider request on the ledger before it is sent.

Each statement is built once per process (building a SQLAlchemy construct costs more than
running it). A claim and a pending request run on their own, outside a transaction block, with
``synchronous_commit`` off for their implicit transaction, or, for a claim held open until the
step's next write (``ledger.held``), in that transaction: committed with the finish, or
asynchronously with the first request. Losing a claim to a database crash only makes the hop
claimable again, which the delivery cap and the fence already handle; and any later durable
commit (the step's finish) flushes it with everything before it. docs/performance.md has the
trade. Timestamps are the statement's (``statement_now``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import Select

from routeq.ledger.models import Hop, ProviderRequest, Query
from routeq.ledger.notify import QUERY_CLOSED_CHANNEL
from routeq.records import (
    CallOutput,
    ClaimedHop,
    HopKind,
    HopStatus,
    NextHop,
    QueryInput,
    QueryOutcome,
    QueryRole,
    QueryStatus,
    RequestDone,
    RequestOutcome,
)

queries = cast(Table, Query.__table__)
hops = cast(Table, Hop.__table__)

# Hops claimed before leases were recorded (migration 0004) keep the old one-hour lease.
LEGACY_LEASE_S = 3600


def statement_now() -> Any:
    """The time the current statement started, for the timestamps the ledger's code writes or
    compares (a row's ``created_at`` default is still ``now()``). Postgres's ``now()`` is the
    transaction's start: in a claim held open until the finish (``ledger.held``) that would
    stamp the finish, and the lease an attempt renews, with the claim's time. For a statement
    that is its own transaction the two are the same."""
    return func.statement_timestamp()


def seconds(value: Any) -> Any:
    """A Postgres interval of ``value`` seconds, for lease arithmetic on the database clock."""
    return func.make_interval(0, 0, 0, 0, 0, 0, value)


def lease_end() -> Any:
    """When a running hop's lease ends (on the database clock)."""
    return func.coalesce(hops.c.lease_expires_at, hops.c.started_at + seconds(LEGACY_LEASE_S))


def lease_expired() -> Any:
    return lease_end() < statement_now()


@functools.cache
def claim_statement(with_answer: bool, held: bool = False) -> Select[Any]:
    """The claim: parameters ``claim_query``, ``claim_seq``, ``claim_lease_s``, ``claim_worker``
    (not the columns' names: in an UPDATE those would be read as new values). One row when the
    hop was claimed (its columns, the query's, and with ``with_answer`` the previous hop's
    answer), none when it was not (finished, owned by a live delivery, or missing).

    ``held``: the claim opens a transaction that the step's next write commits (its first
    provider request, or its finish). It then bounds how long that transaction may sit idle
    to the lease (parameter ``claim_idle_ms``): a worker that vanished without closing its
    connection must not keep the hop's row locked past the lease it claimed. Otherwise the
    claim is its own transaction, committed asynchronously."""
    query_id = bindparam("claim_query", type_=Uuid())
    claimed = (
        update(hops)
        .where(
            hops.c.query_id == query_id,
            hops.c.seq == bindparam("claim_seq", type_=Integer()),
            or_(
                hops.c.status == HopStatus.QUEUED.value,
                and_(hops.c.status == HopStatus.RUNNING.value, lease_expired()),
            ),
        )
        .values(
            status=HopStatus.RUNNING.value,
            attempts=hops.c.attempts + 1,
            started_at=statement_now(),
            lease_expires_at=statement_now() + seconds(bindparam("claim_lease_s", type_=Float())),
            claimed_by=bindparam("claim_worker", type_=String()),
        )
        .returning(
            hops.c.id,
            hops.c.query_id,
            hops.c.seq,
            hops.c.kind,
            hops.c.tier,
            hops.c.model,
            hops.c.attempts,
            hops.c.waits,
        )
        .cte("claimed")
    )
    # Marked running by its first claim only: later claims find it running and write nothing.
    running = (
        update(queries)
        .where(
            queries.c.id == query_id,
            queries.c.status == QueryStatus.QUEUED.value,
            exists(select(claimed.c.id)),
        )
        .values(status=QueryStatus.RUNNING.value)
        .returning(queries.c.id)
        .cte("running")
    )
    query, original = queries.alias("query"), queries.alias("original")
    columns: list[Any] = [
        claimed,
        *_query_columns(query, original),
        # For this statement's transaction only (set_config's third argument: ``is_local``).
        func.set_config(
            "idle_in_transaction_session_timeout",
            bindparam("claim_idle_ms", type_=String()),
            literal(True),
        ).label("idle_timeout")
        if held
        else func.set_config("synchronous_commit", "off", literal(True)).label("async_commit"),
    ]
    source = claimed.join(query, query.c.id == claimed.c.query_id).outerjoin(
        original, _with_original(query, original)
    )
    if with_answer:
        answer = hops.alias("answer")
        columns += [
            answer.c.seq.label("answer_seq"),
            answer.c.tier.label("answer_tier"),
            answer.c.model.label("answer_model"),
            answer.c.output.label("answer_output"),
            answer.c.finish_reason.label("answer_finish_reason"),
        ]
        source = source.outerjoin(
            answer,
            and_(answer.c.query_id == claimed.c.query_id, answer.c.seq == claimed.c.seq - 1),
        )
    return select(*columns).select_from(source).add_cte(running)


def _query_columns(query: Any, original: Any) -> list[Any]:
    """What a step reads of a query (``query_input`` decodes it), from ``query`` joined to
    ``original``, the query it repeats (a shadow's or a re-run's)."""
    return [
        query.c.text,
        query.c.input_tokens,
        # As text, decoded by ``query_input``: a row an older client wrote with metadata too
        # deep to decode must fail the step that claimed it (which hands the hop back), not
        # the claim statement, whose claim has already committed.
        query.c.metadata.cast(Text).label("metadata_json"),
        query.c.user_id,
        query.c.status.label("query_status"),
        query.c.task,
        query.c.parent_id,
        query.c.batch_document_id,
        query.c.role,
        query.c.messages,
        query.c.params,
        query.c.shadow_of,
        query.c.rerun_of,
        query.c.api_key_id,
        query.c.privacy,
        original.c.final_tier.label("original_tier"),
    ]


def _with_original(query: Any, original: Any) -> Any:
    return original.c.id == func.coalesce(query.c.rerun_of, query.c.shadow_of)


@functools.cache
def query_input_statement() -> Select[Any]:
    """A query's input without claiming anything (parameter ``read_query``)."""
    query, original = queries.alias("query"), queries.alias("original")
    return (
        select(query.c.id.label("query_id"), *_query_columns(query, original))
        .select_from(query.outerjoin(original, _with_original(query, original)))
        .where(query.c.id == bindparam("read_query", type_=Uuid()))
    )


def claimed_hop(row: Any) -> ClaimedHop:
    return ClaimedHop(
        id=row.id,
        query_id=row.query_id,
        seq=row.seq,
        kind=HopKind(row.kind),
        tier=row.tier,
        model=row.model,
        delivery=row.attempts,
    )


def query_input(row: Any, *, claimed: bool = True) -> QueryInput:
    """The query from a row of ``claim_statement`` (``claimed``) or ``query_input_statement``.
    Raises ``ValueError`` (or ``RecursionError``) for metadata that cannot be decoded."""
    status = QueryStatus(row.query_status)
    if claimed and status is QueryStatus.QUEUED:
        # The claim marked it running in the same statement, after this read.
        status = QueryStatus.RUNNING
    return QueryInput(
        row.query_id,
        row.text,
        row.input_tokens,
        dict(json.loads(row.metadata_json or "{}")),
        row.user_id,
        status,
        row.task,
        row.parent_id,
        row.batch_document_id,
        role=QueryRole(row.role),
        messages=row.messages,
        params=row.params,
        shadow_of=row.shadow_of,
        rerun_of=row.rerun_of,
        original_tier=row.original_tier,
        api_key_id=row.api_key_id,
        privacy=row.privacy,
    )


def answer_of(row: Any) -> CallOutput | None:
    if getattr(row, "answer_seq", None) is None:
        return None
    return CallOutput(
        row.answer_seq,
        row.answer_tier,
        row.answer_model,
        row.answer_output,
        row.answer_finish_reason,
    )


@functools.cache
def begin_request_statement() -> Any:
    """A provider request put on the ledger as ``pending`` with the hop's lease renewed, in
    one statement; no row when this delivery no longer owns the hop. Parameters: ``req_hop``,
    ``req_delivery``, ``req_lease_s``, ``req_try``, ``req_model``, ``req_input_price``,
    ``req_output_price``, ``req_max_cost``. Committed asynchronously like a claim: a database
    crash can forget it only with the claim before it, and the hop then runs again."""
    requests = cast(Table, ProviderRequest.__table__)
    delivery = bindparam("req_delivery", type_=Integer())
    renewed = (
        update(hops)
        .where(
            hops.c.id == bindparam("req_hop", type_=BigInteger()),
            hops.c.attempts == delivery,
            hops.c.status == HopStatus.RUNNING.value,
        )
        .values(lease_expires_at=statement_now() + seconds(bindparam("req_lease_s", type_=Float())))
        .returning(hops.c.id)
        .cte("renewed")
    )
    price = requests.c.input_price_per_mtok.type
    values = select(
        renewed.c.id,
        delivery,
        bindparam("req_try", type_=Integer()),
        bindparam("req_model", type_=String()),
        literal(RequestOutcome.PENDING.value),
        bindparam("req_input_price", type_=price),
        bindparam("req_output_price", type_=price),
        bindparam("req_max_cost", type_=price),
    ).select_from(renewed)
    columns = [
        requests.c.hop_id,
        requests.c.delivery,
        requests.c.try_number,
        requests.c.model,
        requests.c.outcome,
        requests.c.input_price_per_mtok,
        requests.c.output_price_per_mtok,
        requests.c.max_cost,
    ]
    return (
        insert(requests)
        .from_select(columns, values, include_defaults=False)
        .returning(
            requests.c.id,
            func.set_config("synchronous_commit", "off", literal(True)).label("async_commit"),
        )
        .add_cte(renewed)
    )


def finish_statement(
    hop: ClaimedHop,
    status: HopStatus,
    columns: dict[str, Any],
    next_hop: NextHop | None,
    done: RequestDone | None,
    outcome: QueryOutcome | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The happy path's finish in one statement, and its parameters: the call's request
    completed (its cost on the request, the hop and the query), the hop closed (fenced by the
    delivery), and the next hop queued or the query closed with ``outcome`` (its answer copied
    from an earlier hop, and ``NOTIFY`` sent at commit). One row: whether this delivery still
    owned the hop (``owned``), and whether this closed the query (``closed``).

    For a query that closes alone only: one with no parent (no combine to wake), whose texts
    are kept (no erasure at close), answered by an earlier hop than this one. The statement
    is built once per shape (which columns, which parts); the values are parameters."""
    if outcome is not None:
        assert outcome.answer_seq != hop.seq and outcome.from_query is None
    cost = done.cost if done is not None and done.cost else None
    shape = _FinishShape(
        columns=tuple(sorted(columns)),
        request=done is not None,
        cost=cost is not None,
        next_hop=next_hop is not None,
        close=None if outcome is None else outcome.answer_seq is not None,
    )
    params: dict[str, Any] = {
        "f_hop": hop.id,
        "f_delivery": hop.delivery,
        "f_query": hop.query_id,
        "f_status": status.value,
        **{f"f_col_{name}": value for name, value in columns.items()},
    }
    if done is not None:
        params.update(
            f_request=done.request_id,
            f_outcome=done.outcome,
            f_http_status=done.http_status,
            f_error=done.error,
            f_input_tokens=done.input_tokens,
            f_output_tokens=done.output_tokens,
            f_tokens_estimated=done.tokens_estimated,
            f_latency_ms=done.latency_ms,
            f_cost=done.cost,
        )
    if next_hop is not None:
        params.update(
            f_next_seq=next_hop.seq,
            f_next_kind=next_hop.kind.value,
            f_next_tier=next_hop.tier,
            f_next_model=next_hop.model,
            f_next_reason=next_hop.reason,
        )
    if outcome is not None:
        params.update(
            f_final_status=outcome.status.value,
            f_final_reason=outcome.reason,
            f_answer_seq=outcome.answer_seq,
        )
    return _finish_statement(shape), params


@dataclass(frozen=True)
class _FinishShape:
    columns: tuple[str, ...]  # the hop's result columns set
    request: bool  # a request to complete
    cost: bool  # with a cost to add
    next_hop: bool
    close: bool | None  # None: no outcome; else whether the answer is copied from a hop


@functools.cache
def _finish_statement(shape: _FinishShape) -> Any:
    """Each row is updated by one sub-statement, so that Postgres's recheck of a row another
    transaction changed meanwhile (READ COMMITTED) re-evaluates every condition on it. The
    hop's row always gets the spend, and the fenced columns only ``WHEN`` this delivery owns
    it (``CASE``: otherwise they keep their values); the query's row always gets the spend,
    and is closed only when the hop was owned and the query is not final. Whether each
    happened is read back from the new row: a close sets ``finished_at`` to this statement's
    ``statement_now()``, which no earlier statement's can equal. Committed durably."""
    requests = cast(Table, ProviderRequest.__table__)
    hop_id, query_id = bindparam("f_hop", type_=BigInteger()), bindparam("f_query", type_=Uuid())
    delivery = bindparam("f_delivery", type_=Integer())
    hop_status = bindparam("f_status", type_=String())
    owns = and_(
        hops.c.attempts == delivery,
        hops.c.status.in_((HopStatus.QUEUED.value, HopStatus.RUNNING.value)),
    )
    cost = bindparam("f_cost", type_=requests.c.cost.type)
    ctes: list[Any] = []
    added: Any = cost
    if shape.request:
        completed = (
            update(requests)
            .where(
                requests.c.id == bindparam("f_request", type_=BigInteger()),
                # Once: a completion retried after an ambiguous commit finds it completed.
                requests.c.outcome.in_(
                    (RequestOutcome.PENDING.value, RequestOutcome.UNKNOWN.value)
                ),
            )
            .values(
                outcome=bindparam("f_outcome", type_=String()),
                http_status=bindparam("f_http_status", type_=Integer()),
                error=bindparam("f_error", type_=Text()),
                input_tokens=bindparam("f_input_tokens", type_=Integer()),
                output_tokens=bindparam("f_output_tokens", type_=Integer()),
                tokens_estimated=bindparam(
                    "f_tokens_estimated", type_=requests.c.tokens_estimated.type
                ),
                cost=cost,
                latency_ms=bindparam("f_latency_ms", type_=Integer()),
            )
            .returning(requests.c.id)
            .cte("completed")
        )
        ctes.append(completed)
        # The cost goes with its request's completion: none for a row already completed, or
        # one a database crash took with it (it was committed asynchronously).
        added = case((exists(select(completed.c.id)), cost), else_=0)

    def fenced(column: str, value: Any) -> Any:
        return case((owns, value), else_=hops.c[column])

    values: dict[str, Any] = {
        name: fenced(name, bindparam(f"f_col_{name}", type_=hops.c[name].type))
        for name in shape.columns
    }
    values.update(
        status=fenced("status", hop_status),
        finished_at=fenced("finished_at", statement_now()),
        lease_expires_at=fenced("lease_expires_at", null()),
    )
    if shape.cost:
        values["cost"] = hops.c.cost + added
    closed = (
        update(hops)
        .where(hops.c.id == hop_id)
        .values(**values)
        .returning(
            hops.c.id,
            func.coalesce(
                and_(
                    hops.c.attempts == delivery,
                    hops.c.status == hop_status,
                    hops.c.finished_at == statement_now(),
                ),
                False,
            ).label("owned"),
        )
        .cte("closed")
    )
    owned = exists(select(closed.c.id).where(closed.c.owned))
    if shape.next_hop:
        queued = (
            select(
                query_id,
                bindparam("f_next_seq", type_=Integer()),
                bindparam("f_next_kind", type_=String()),
                bindparam("f_next_tier", type_=String()),
                bindparam("f_next_model", type_=String()),
                bindparam("f_next_reason", type_=Text()),
                literal(HopStatus.QUEUED.value, String()),
            )
            .select_from(closed)
            .where(closed.c.owned)
        )
        ctes.append(
            pg_insert(hops)
            .from_select(
                ["query_id", "seq", "kind", "tier", "model", "reason", "status"],
                queued,
                include_defaults=False,
            )
            .on_conflict_do_nothing(constraint="uq_hops_query_seq")
            .returning(hops.c.id)
            .cte("queued")
        )
    closed_query: Any = literal(False)
    if shape.cost or shape.close is not None:
        final_status = bindparam("f_final_status", type_=String())
        closes = and_(
            owned, queries.c.status.not_in((QueryStatus.DONE.value, QueryStatus.FAILED.value))
        )

        def closing(column: str, value: Any) -> Any:
            return case((closes, value), else_=queries.c[column])

        query_values: dict[str, Any] = {}
        if shape.cost:
            query_values["total_cost"] = queries.c.total_cost + added
        if shape.close is not None:
            query_values.update(
                status=closing("status", final_status),
                final_reason=closing("final_reason", bindparam("f_final_reason", type_=Text())),
                finished_at=closing("finished_at", statement_now()),
            )
            if shape.close:
                answer = hops.alias("answer")
                where = and_(
                    answer.c.query_id == query_id,
                    answer.c.seq == bindparam("f_answer_seq", type_=Integer()),
                )
                for column in ("output", "tier", "model"):
                    query_values[f"final_{'answer' if column == 'output' else column}"] = closing(
                        f"final_{'answer' if column == 'output' else column}",
                        select(answer.c[column]).where(where).scalar_subquery(),
                    )
        closed_flag = (
            func.coalesce(
                and_(queries.c.status == final_status, queries.c.finished_at == statement_now()),
                False,
            )
            if shape.close is not None
            else literal(False)
        )
        query_update = (
            update(queries)
            .where(queries.c.id == query_id)
            .values(**query_values)
            .returning(queries.c.id, closed_flag.label("closed"))
            .cte("query_update")
        )
        ctes.append(query_update)
        if shape.close is not None:
            # Delivered at commit to whoever waits for it (``ledger.notify``): the id only.
            notified = (
                select(func.pg_notify(QUERY_CLOSED_CHANNEL, query_update.c.id.cast(Text)))
                .where(query_update.c.closed)
                .cte("notified")
            )
            ctes.append(notified)
            closed_query = and_(
                exists(select(query_update.c.id).where(query_update.c.closed)),
                select(func.count()).select_from(notified).scalar_subquery() >= 0,
            )
    statement = select(owned.label("owned"), closed_query.label("closed"))
    for cte in ctes:
        statement = statement.add_cte(cte)
    return statement
