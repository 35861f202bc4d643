"""Batches in the ledger: registering documents, reusing summaries, progress and results.

A batch is resumable because registering is idempotent per ``(batch, doc_id)``: a document whose
text is unchanged and whose summary is done or still in flight is kept as it is; a failed one is
submitted again; a new or changed one is submitted, unless some earlier query already summarised
the same text under the same spec (``cache_key``), in which case that query is reused and this
batch pays nothing for it. Progress and results are read from the ledger, so they are right no
matter how many producers feed the batch.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from psycopg.errors import DeadlockDetected
from sqlalchemy import Engine, Table, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from routeq.errors import UnknownQueryError, UsageError
from routeq.ledger.models import Batch, BatchDocument, HopKind, HopStatus, QueryStatus
from routeq.ledger.repository import (
    family_backlog,
    hops,
    queries,
    submit_query,
)
from routeq.ledger.sql import named
from routeq.records import NewQuery, NextHop, QueryRole

batches = cast(Table, Batch.__table__)
_DEADLOCK_RETRIES = 3
documents = cast(Table, BatchDocument.__table__)


class UnknownBatchError(UnknownQueryError):
    """No batch has this id or name."""


class BatchSpecMismatchError(UsageError):
    """A batch of this name exists with another summary spec."""


@dataclass(frozen=True)
class BatchInfo:
    id: uuid.UUID
    name: str
    spec: dict[str, Any]
    created: bool = False


@dataclass(frozen=True)
class DocumentIn:
    """A document to register: text to summarise, or the reason it was rejected."""

    doc_id: str
    source: str
    format: str
    text: str | None = None
    content_hash: str | None = None
    input_tokens: int | None = None
    rejected: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    position: int | None = None  # place in the producer's input, for results in input order


@dataclass(frozen=True)
class Registered:
    """What registering did with one document.

    ``action``: 'submitted' (new query), 'retried' (its last query failed), 'kept' (done or in
    flight already), 'reused' (another query summarised the same text) or 'rejected'.
    """

    doc_id: str
    action: str
    query_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Registration:
    documents: list[Registered]
    publish: list[NextHop]


@dataclass(frozen=True)
class BatchProgress:
    """Counts by state and spend, straight from the ledger."""

    total: int
    rejected: int
    queued: int
    running: int
    done: int
    failed: int
    unsubmitted: int
    reused: int
    spent: Decimal

    @property
    def accepted(self) -> int:
        return self.total - self.rejected

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def complete(self) -> bool:
        return self.finished == self.accepted and self.unsubmitted == 0


@dataclass(frozen=True)
class CallRecord:
    tier: str | None
    output_tokens: int | None
    passed: bool | None = None
    score: Decimal | None = None
    reason: str | None = None


@dataclass(frozen=True)
class DocumentResult:
    """One batch document with its summary and how it was produced."""

    doc_id: str
    source: str
    format: str
    status: str  # rejected, unsubmitted, queued, running, done, failed
    reason: str | None
    summary: str | None
    final_tier: str | None
    final_model: str | None
    input_tokens: int | None
    cost: Decimal  # what this batch paid for the document (0 when reused)
    reused: bool
    parts: int  # pieces the document was split into (0: summarised in one call)
    tier_path: list[str]  # tiers called for the final summary, in order
    verdicts: list[dict[str, Any]]  # judge verdicts on the final summary's calls
    escalated: bool  # any query of its family escalated (the ``escalations`` view)
    # The tokens of its family's accepted calls, for the all-top-tier counterfactual
    # (the ``top_tier_counterfactual`` view; priced by routeq.report.counterfactual_cost).
    top_tier_input_tokens: int
    top_tier_output_tokens: int
    query_id: uuid.UUID | None


QueryMaker = Callable[[DocumentIn, int], NewQuery]


class BatchStore:
    """Typed access to ``batches`` and ``batch_documents``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, name: str, spec: dict[str, Any]) -> BatchInfo:
        """The batch called ``name``, created if new. Its spec must match: the same name with
        another spec would mix summaries of different shapes."""
        with self.engine.begin() as conn:
            created = conn.execute(
                pg_insert(batches)
                .values(id=uuid.uuid4(), name=name, spec=spec)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(batches.c.id)
            ).scalar_one_or_none()
            row = conn.execute(select(batches).where(batches.c.name == name)).one()
        if row.spec != spec:
            raise BatchSpecMismatchError(
                f"batch {name!r} already exists with another summary spec ({row.spec}); "
                "pass another --name, or the same options as before"
            )
        return BatchInfo(row.id, row.name, dict(row.spec), created=created is not None)

    def find(self, ref: str | uuid.UUID) -> BatchInfo:
        """A batch by id or by name."""
        with self.engine.connect() as conn:
            condition = batches.c.name == str(ref)
            with contextlib.suppress(ValueError):
                condition = condition | (batches.c.id == uuid.UUID(str(ref)))
            row = conn.execute(select(batches).where(condition)).one_or_none()
        if row is None:
            raise UnknownBatchError(
                f"no batch with id or name {str(ref)!r}; `routeq summarize` prints the id"
            )
        return BatchInfo(row.id, row.name, dict(row.spec))

    # -- registering -----------------------------------------------------------------------------

    def register(
        self, batch_id: uuid.UUID, items: Sequence[DocumentIn], make_query: QueryMaker
    ) -> Registration:
        """Register documents in one transaction; return what to publish after the commit.

        Rows are locked in ``doc_id`` order, so producers feeding one batch cannot deadlock
        each other; a deadlock with another batch sharing texts (advisory locks on cache
        keys) is retried, since Postgres rolled the whole transaction back.
        """
        ordered = sorted(items, key=lambda item: item.doc_id)
        for attempt in range(1, _DEADLOCK_RETRIES + 1):
            try:
                return self._register(batch_id, ordered, make_query)
            except OperationalError as error:
                if not isinstance(error.orig, DeadlockDetected) or attempt == _DEADLOCK_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _register(
        self, batch_id: uuid.UUID, items: Sequence[DocumentIn], make_query: QueryMaker
    ) -> Registration:
        registered: list[Registered] = []
        publish: list[NextHop] = []
        with self.engine.begin() as conn:
            for item in items:
                entry, hops_to_publish = self._register_one(conn, batch_id, item, make_query)
                registered.append(entry)
                publish += hops_to_publish
            conn.execute(
                update(batches).where(batches.c.id == batch_id).values(updated_at=func.now())
            )
        return Registration(registered, publish)

    def _register_one(
        self, conn: Connection, batch_id: uuid.UUID, item: DocumentIn, make_query: QueryMaker
    ) -> tuple[Registered, list[NextHop]]:
        conn.execute(
            pg_insert(documents)
            .values(
                batch_id=batch_id,
                doc_id=item.doc_id,
                source=item.source,
                format=item.format,
                position=item.position,
            )
            .on_conflict_do_nothing(constraint="uq_batch_documents_doc")
        )
        row = conn.execute(
            select(documents, queries.c.status.label("query_status"))
            .select_from(documents.outerjoin(queries, queries.c.id == documents.c.query_id))
            .where(documents.c.batch_id == batch_id, documents.c.doc_id == item.doc_id)
            .with_for_update(of=documents)
        ).one()
        where = documents.c.id == row.id
        if item.rejected is not None:
            conn.execute(
                update(documents)
                .where(where)
                .values(
                    source=item.source,
                    format=item.format,
                    rejected=item.rejected,
                    content_hash=None,
                    input_tokens=None,
                    query_id=None,
                    reused=False,
                    updated_at=func.now(),
                )
            )
            return Registered(item.doc_id, "rejected"), []
        assert item.text is not None and item.content_hash is not None
        unchanged = row.content_hash == item.content_hash and row.query_id is not None
        if unchanged and row.query_status != QueryStatus.FAILED.value:
            return Registered(item.doc_id, "kept", row.query_id), family_backlog(conn, row.query_id)
        values: dict[str, Any] = {
            "source": item.source,
            "format": item.format,
            "rejected": None,
            "content_hash": item.content_hash,
            "input_tokens": item.input_tokens,
            "updated_at": func.now(),
        }
        query = make_query(item, row.id)
        reusable = _reusable(conn, query.cache_key) if query.cache_key else None
        if reusable is not None:
            # Another batch's query (reused, free), or this document's own earlier one for the
            # same text (its text changed and changed back): either way, nothing to pay again.
            reused = reusable.batch_document_id != row.id
            conn.execute(
                update(documents).where(where).values(query_id=reusable.id, reused=reused, **values)
            )
            action = "reused" if reused else "kept"
            return Registered(item.doc_id, action, reusable.id), family_backlog(conn, reusable.id)
        submitted = submit_query(conn, query)
        conn.execute(
            update(documents)
            .where(where)
            .values(
                query_id=submitted.query_id,
                reused=False,
                submissions=documents.c.submissions + 1,
                **values,
            )
        )
        action = "retried" if unchanged else "submitted"
        route = NextHop(submitted.query_id, 1, HopKind.ROUTE)
        return Registered(item.doc_id, action, submitted.query_id), [route]

    # -- reading ---------------------------------------------------------------------------------

    def progress(self, batch_id: uuid.UUID) -> BatchProgress:
        with self.engine.connect() as conn:
            status = queries.c.status
            counts = conn.execute(
                select(
                    func.count().label("total"),
                    func.count().filter(documents.c.rejected.is_not(None)).label("rejected"),
                    func.count().filter(status == QueryStatus.QUEUED.value).label("queued"),
                    func.count().filter(status == QueryStatus.RUNNING.value).label("running"),
                    func.count().filter(status == QueryStatus.DONE.value).label("done"),
                    func.count().filter(status == QueryStatus.FAILED.value).label("failed"),
                    func.count()
                    .filter(documents.c.rejected.is_(None), documents.c.query_id.is_(None))
                    .label("unsubmitted"),
                    func.count().filter(documents.c.reused).label("reused"),
                )
                .select_from(documents.outerjoin(queries, queries.c.id == documents.c.query_id))
                .where(documents.c.batch_id == batch_id)
            ).one()
            spent = self._spent(conn, batch_id)
        return BatchProgress(**counts._asdict(), spent=spent)

    def spent(self, batch_id: uuid.UUID) -> Decimal:
        """Everything this batch paid: every query it submitted, pieces, failures and shadow
        samples of its documents included."""
        with self.engine.connect() as conn:
            return self._spent(conn, batch_id)

    def shadow_spent(self, batch_id: uuid.UUID) -> Decimal:
        """The part of ``spent`` that paid for shadow A/B samples of the batch's documents."""
        with self.engine.connect() as conn:
            row = conn.execute(named("batch_spend"), {"batch_id": batch_id}).one_or_none()
        return Decimal(row.shadow_spent if row is not None else 0)

    def _spent(self, conn: Connection, batch_id: uuid.UUID) -> Decimal:
        """The ``batch_spend`` view: the one definition of what a batch paid."""
        row = conn.execute(named("batch_spend"), {"batch_id": batch_id}).one_or_none()
        return Decimal(row.spent if row is not None else 0)

    def results(self, batch_id: uuid.UUID) -> list[DocumentResult]:
        """Every document of the batch, in input order, with its summary so far."""
        with self.engine.connect() as conn:
            docs = conn.execute(
                select(documents)
                .where(documents.c.batch_id == batch_id)
                .order_by(documents.c.position.asc().nulls_last(), documents.c.id)
            ).all()
            # What each document paid, whether it escalated, its counterfactual tokens: the
            # batch_document_spend view, so totals, metrics and psql agree.
            spend = {
                row.document_id: row
                for row in conn.execute(named("batch_documents"), {"batch_id": batch_id})
            }
            # Subqueries, not id lists: a batch may hold more documents than bind parameters.
            roots = select(documents.c.query_id).where(
                documents.c.batch_id == batch_id, documents.c.query_id.is_not(None)
            )
            family_ids = select(queries.c.id).where(
                or_(queries.c.id.in_(roots), queries.c.parent_id.in_(roots))
            )
            family = conn.execute(
                select(
                    queries.c.id,
                    queries.c.parent_id,
                    queries.c.role,
                    queries.c.task,
                    queries.c.status,
                    queries.c.final_answer,
                    queries.c.final_tier,
                    queries.c.final_model,
                    queries.c.final_reason,
                ).where(queries.c.id.in_(family_ids))
            ).all()
            hop_rows = conn.execute(
                select(
                    hops.c.query_id,
                    hops.c.seq,
                    hops.c.kind,
                    hops.c.tier,
                    hops.c.status,
                    hops.c.output_tokens,
                    hops.c.passed,
                    hops.c.judge_score,
                    hops.c.reason,
                )
                .where(hops.c.query_id.in_(family_ids))
                .where(hops.c.kind.in_([HopKind.CALL.value, HopKind.JUDGE.value]))
                .order_by(hops.c.query_id, hops.c.seq)
            ).all()
        return assemble_results(docs, spend, family, hop_rows)


def _reusable(conn: Connection, cache_key: str) -> Any:
    """A query that summarised (or is summarising) the same text under the same spec.

    An advisory lock on the key makes concurrent producers agree on one query per key.
    """
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": cache_key}
    )
    return conn.execute(
        select(queries.c.id, queries.c.batch_document_id)
        .where(
            queries.c.cache_key == cache_key,
            queries.c.status != QueryStatus.FAILED.value,
        )
        .order_by((queries.c.status == QueryStatus.DONE.value).desc(), queries.c.created_at)
        .limit(1)
    ).one_or_none()


def assemble_results(
    docs: Sequence[Any],
    spend: dict[int, Any],
    family: Sequence[Any],
    hop_rows: Sequence[Any],
) -> list[DocumentResult]:
    """Join documents, their query families and hops into results. ``spend`` holds each
    document's row of the ``batch_document_spend`` view (by ``batch_documents.id``)."""
    by_id = {q.id: q for q in family}
    children: dict[uuid.UUID, list[Any]] = {}
    for q in family:
        if q.parent_id is not None:
            children.setdefault(q.parent_id, []).append(q)
    calls: dict[uuid.UUID, list[CallRecord]] = {}
    for h in hop_rows:
        records = calls.setdefault(h.query_id, [])
        if h.kind == HopKind.CALL.value and h.status == HopStatus.DONE.value:
            records.append(CallRecord(h.tier, h.output_tokens))
        elif h.kind == HopKind.JUDGE.value and h.passed is not None and records:
            last = records[-1]
            records[-1] = CallRecord(
                last.tier, last.output_tokens, h.passed, h.judge_score, h.reason
            )
    results = []
    for doc in docs:
        root = by_id.get(doc.query_id) if doc.query_id is not None else None
        if doc.rejected is not None:
            status = "rejected"
        elif root is None:
            status = "unsubmitted"
        else:
            status = root.status
        pieces = children.get(root.id, []) if root is not None else []
        answer_query = root
        if pieces:
            combines = [p for p in pieces if p.role == QueryRole.COMBINE.value]
            if combines:
                answer_query = max(combines, key=lambda p: (p.task or {}).get("stage", 0))
        answer_calls = calls.get(answer_query.id, []) if answer_query is not None else []
        paid = spend.get(doc.id)
        results.append(
            DocumentResult(
                doc_id=doc.doc_id,
                source=doc.source,
                format=doc.format,
                status=status,
                reason=doc.rejected if root is None else root.final_reason,
                summary=root.final_answer if root is not None else None,
                final_tier=root.final_tier if root is not None else None,
                final_model=root.final_model if root is not None else None,
                input_tokens=doc.input_tokens,
                # its own cost: a shadow sample of it is measurement, reported apart
                cost=Decimal(paid.spent - paid.shadow_spent if paid is not None else 0),
                reused=doc.reused,
                parts=sum(1 for p in pieces if p.role == QueryRole.PART.value),
                tier_path=[c.tier for c in answer_calls if c.tier],
                verdicts=[
                    {
                        "tier": c.tier,
                        "passed": c.passed,
                        "score": None if c.score is None else float(c.score),
                        "reason": c.reason,
                    }
                    for c in answer_calls
                    if c.passed is not None
                ],
                escalated=bool(paid is not None and paid.escalated),
                top_tier_input_tokens=int(paid.top_tier_input_tokens if paid is not None else 0),
                top_tier_output_tokens=int(paid.top_tier_output_tokens if paid is not None else 0),
                query_id=doc.query_id,
            )
        )
    return results
