"""Read-only views of batches for the command line: every batch at a glance, and how much of
one batch's work (documents and the parts they were split into) is finished.

Both read the ledger in a couple of aggregate queries, so they stay cheap on large batches and
can be polled by a progress bar.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, func, select

from routeq.ledger import QueryStatus
from routeq.ledger.batches import batches, documents
from routeq.ledger.repository import queries

_FINAL = (QueryStatus.DONE.value, QueryStatus.FAILED.value)


@dataclass(frozen=True)
class BatchSummary:
    """One line of ``routeq batch list``."""

    id: uuid.UUID
    name: str
    documents: int
    done: int
    failed: int
    rejected: int
    spent: Decimal
    created_at: datetime
    updated_at: datetime

    @property
    def pending(self) -> int:
        return self.documents - self.done - self.failed - self.rejected


def list_batches(engine: Engine) -> list[BatchSummary]:
    """Every batch, newest first, with its documents by state and what it spent."""
    status = queries.c.status
    counts = (
        select(
            documents.c.batch_id,
            func.count().label("documents"),
            func.count().filter(status == QueryStatus.DONE.value).label("done"),
            func.count().filter(status == QueryStatus.FAILED.value).label("failed"),
            func.count().filter(documents.c.rejected.is_not(None)).label("rejected"),
        )
        .select_from(documents.outerjoin(queries, queries.c.id == documents.c.query_id))
        .group_by(documents.c.batch_id)
        .subquery()
    )
    # What a batch paid is the cost of the queries it submitted (reused ones belong to others).
    spend = (
        select(documents.c.batch_id, func.sum(queries.c.total_cost).label("spent"))
        .select_from(queries.join(documents, documents.c.id == queries.c.batch_document_id))
        .group_by(documents.c.batch_id)
        .subquery()
    )
    rows = (
        select(
            batches.c.id,
            batches.c.name,
            func.coalesce(counts.c.documents, 0).label("documents"),
            func.coalesce(counts.c.done, 0).label("done"),
            func.coalesce(counts.c.failed, 0).label("failed"),
            func.coalesce(counts.c.rejected, 0).label("rejected"),
            func.coalesce(spend.c.spent, 0).label("spent"),
            batches.c.created_at,
            batches.c.updated_at,
        )
        .select_from(
            batches.outerjoin(counts, counts.c.batch_id == batches.c.id).outerjoin(
                spend, spend.c.batch_id == batches.c.id
            )
        )
        .order_by(batches.c.created_at.desc(), batches.c.name)
    )
    with engine.connect() as conn:
        found = conn.execute(rows).all()
    return [
        BatchSummary(
            id=row.id,
            name=row.name,
            documents=row.documents,
            done=row.done,
            failed=row.failed,
            rejected=row.rejected,
            spent=Decimal(row.spent),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in found
    ]


@dataclass(frozen=True)
class WorkUnits:
    """A batch's work in units a progress estimate can count: a document summarised in one
    call is one unit; a split document is one unit per child query (its parts, then the
    combines) plus one for the document itself. Counting documents alone leaves an estimate
    with nothing to go on for most of a run whose documents are long and each take minutes."""

    total: int
    finished: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.finished)


def work_units(engine: Engine, batch_id: uuid.UUID) -> WorkUnits:
    """The batch's work units now. A document not routed yet counts as one unit (its split is
    decided when it is routed), so the total grows a little as long documents are split."""
    roots = (
        select(documents.c.query_id.label("root"), queries.c.status.label("status"))
        .select_from(documents.join(queries, queries.c.id == documents.c.query_id))
        .where(documents.c.batch_id == batch_id, documents.c.rejected.is_(None))
        .subquery()
    )
    children = (
        select(
            queries.c.parent_id.label("root"),
            func.count().label("children"),
            func.count().filter(queries.c.status.in_(_FINAL)).label("finished"),
        )
        .where(queries.c.parent_id.in_(select(roots.c.root)))
        .group_by(queries.c.parent_id)
        .subquery()
    )
    accepted = (
        select(func.count())
        .select_from(documents)
        .where(documents.c.batch_id == batch_id, documents.c.rejected.is_(None))
    )
    per_root = select(
        roots.c.status, func.coalesce(children.c.children, 0), func.coalesce(children.c.finished, 0)
    ).select_from(roots.outerjoin(children, children.c.root == roots.c.root))
    with engine.connect() as conn:
        documents_accepted = conn.execute(accepted).scalar_one()
        rows = conn.execute(per_root).all()
    total = documents_accepted - len(rows)  # not submitted yet: one unit each, none finished
    finished = 0
    for status, child_count, child_finished in rows:
        final = status in _FINAL
        total += child_count + 1
        finished += (child_count + 1) if final else child_finished
    return WorkUnits(total=total, finished=finished)
