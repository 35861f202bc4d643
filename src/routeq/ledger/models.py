"""The hop ledger's tables (docs/reliability.md). Postgres is the truth; Redis only delivers.

``queries`` holds one row per submitted query; ``hops`` one row per step of its journey (route,
call, judge), unique on ``(query_id, seq)`` so a redelivered message cannot record a step twice;
``provider_requests`` one row per HTTP request to a model, so retries and their cost are never lost.
``batches`` and ``batch_documents`` group summarization queries: one document row per input the
user named (rejected ones included), pointing at the query that summarises it. A document too long
for one call becomes a root query with *child* queries (its parts, then the combines of their
summaries), each with its own hops, tied together by ``parent_id``.
Large texts (prompt, answers) sit in their own columns, stored out of line by Postgres (TOAST), so
scans of the numeric columns for reports stay narrow.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    text as sql,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from routeq.records import (
    LIVE_HOP_STATUSES,
    QUERY_ROLES,
    HopKind,
    HopStatus,
    QueryRole,
    QueryStatus,
    RequestOutcome,
)

__all__ = [
    "LIVE_HOP_STATUSES",
    "Base",
    "Batch",
    "BatchDocument",
    "BudgetReservation",
    "BudgetUse",
    "Hop",
    "HopKind",
    "HopStatus",
    "ProviderRequest",
    "Query",
    "QueryRole",
    "QueryStatus",
    "ReconcilerStats",
    "RequestOutcome",
]

# USD with ten decimals: a 5-token call at $0.15/Mtok is $0.00000075 and must not round to zero.
Money = Numeric(20, 10)


class Base(DeclarativeBase):
    pass


class Query(Base):
    __tablename__ = "queries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    text: Mapped[str] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, default=dict, server_default=sql("'{}'::jsonb")
    )
    user_id: Mapped[str | None] = mapped_column(String(200))
    api_key_id: Mapped[str | None] = mapped_column(String(200))  # the key's id, never the key
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=QueryStatus.QUEUED.value)
    final_answer: Mapped[str | None] = mapped_column(Text)
    final_tier: Mapped[str | None] = mapped_column(String(40))
    final_model: Mapped[str | None] = mapped_column(String(200))
    final_reason: Mapped[str | None] = mapped_column(Text)
    total_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    role: Mapped[str] = mapped_column(
        String(16), default=QueryRole.ANSWER.value, server_default=QueryRole.ANSWER.value
    )
    # A chat request's turns ({"role", "content"} each; the last user turn is also ``text``)
    # and its generation parameters (temperature, max_tokens); None for a plain text query.
    messages: Mapped[list[dict[str, str]] | None] = mapped_column(JSONB)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    shadow_of: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("queries.id", ondelete="SET NULL", name="fk_queries_shadow_of"),
    )
    rerun_of: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("queries.id", ondelete="SET NULL", name="fk_queries_rerun_of"),
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("queries.id", ondelete="CASCADE")
    )
    cache_key: Mapped[str | None] = mapped_column(String(200))
    batch_document_id: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey(
            "batch_documents.id",
            ondelete="SET NULL",
            use_alter=True,  # batch_documents also points here: a cycle, added after both exist
            name="fk_queries_batch_document",
        ),
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The privacy mode decided at submission, and what erasing its texts left (migration 0013).
    privacy: Mapped[str] = mapped_column(String(8), default="full", server_default="full")
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    texts_erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status in ('queued', 'running', 'done', 'failed')", name="query_status"),
        CheckConstraint(f"role in {QUERY_ROLES}", name="query_role"),
        CheckConstraint("privacy in ('full', 'redact', 'none')", name="query_privacy"),
        Index(
            "ix_queries_texts_kept", "created_at", postgresql_where=sql("texts_erased_at is null")
        ),
        Index(
            "ix_queries_answer_held",
            "finished_at",
            postgresql_where=sql("privacy = 'none' and texts_erased_at is null"),
        ),
        Index("ix_queries_role", "role", "created_at"),
        Index("ix_queries_shadow_of", "shadow_of", postgresql_where=sql("shadow_of is not null")),
        Index("ix_queries_rerun_of", "rerun_of", postgresql_where=sql("rerun_of is not null")),
        Index("ix_queries_parent", "parent_id", postgresql_where=sql("parent_id is not null")),
        Index("ix_queries_cache_key", "cache_key", postgresql_where=sql("cache_key is not null")),
        # A user's earlier answer queries ([routing.first_queries]; migration 0007).
        Index(
            "ix_queries_user_history",
            "user_id",
            "created_at",
            "id",
            postgresql_where=sql("user_id is not null and role = 'answer'"),
        ),
        Index(
            "ix_queries_batch_document",
            "batch_document_id",
            postgresql_where=sql("batch_document_id is not null"),
        ),
        Index("ix_queries_created_at", "created_at"),
        Index(
            "ix_queries_live",
            "status",
            postgresql_where=sql("status in ('queued', 'running')"),
        ),
    )


class Hop(Base):
    __tablename__ = "hops"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    query_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("queries.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    tier: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=HopStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Deliveries that only waited for provider capacity (migration 0011): not counted by the cap.
    waits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    tokens_estimated: Mapped[bool] = mapped_column(default=False, server_default="false")
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # A judge hop's score (1-10 from an LLM judge); a route hop's policy score is apart.
    judge_score: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
    # On route hops: the policy that decided, its version (e.g. a trained artifact's hash) and
    # its score (e.g. a classifier's probability); the policy's details go to ``details``.
    policy: Mapped[str | None] = mapped_column(String(80))
    policy_version: Mapped[str | None] = mapped_column(String(80))
    policy_score: Mapped[float | None] = mapped_column()
    passed: Mapped[bool | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=sql("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A running hop belongs to its delivery until this time; each provider attempt renews it.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # the worker node of the claim

    __table_args__ = (
        UniqueConstraint("query_id", "seq", name="uq_hops_query_seq"),
        CheckConstraint("kind in ('route', 'call', 'judge', 'combine')", name="hop_kind"),
        CheckConstraint("status in ('queued', 'running', 'done', 'failed')", name="hop_status"),
        Index(
            "ix_hops_live",
            "status",
            "created_at",
            postgresql_where=sql("status in ('queued', 'running')"),
        ),
        Index("ix_hops_kind_tier", "kind", "tier", "created_at"),
    )


class ProviderRequest(Base):
    """One HTTP request to a model, successful or not, with what it cost at the price of the day.

    The row is written *before* the request is sent (``pending``) and completed after it, so a
    worker killed between the two leaves a visible ``unknown`` request with ``max_cost``, the
    most it can have cost, instead of a paid call with no trace.
    """

    __tablename__ = "provider_requests"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    hop_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("hops.id", ondelete="CASCADE"))
    delivery: Mapped[int] = mapped_column(Integer)
    try_number: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tokens_estimated: Mapped[bool] = mapped_column(default=False, server_default="false")
    input_price_per_mtok: Mapped[Decimal] = mapped_column(Money)
    output_price_per_mtok: Mapped[Decimal] = mapped_column(Money)
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    max_cost: Mapped[Decimal | None] = mapped_column(Money)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "outcome in ('pending', 'ok', 'error', 'unknown', 'superseded')",
            name="request_outcome",
        ),
        Index("ix_provider_requests_hop", "hop_id"),
        Index(
            "ix_provider_requests_pending",
            "hop_id",
            postgresql_where=sql("outcome = 'pending'"),
        ),
    )


class Feedback(Base):
    """A person's verdict on an answer (``Client.feedback``, ``routeq feedback``). A thumbs-down
    on an answer below the top tier re-runs the query one tier up; ``rerun_query_id`` links the
    re-run. Feedback is also a label for training routing policies."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    query_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("queries.id", ondelete="CASCADE")
    )
    thumbs_down: Mapped[bool] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str | None] = mapped_column(String(40))  # the answer's tier when it was rated
    rerun_query_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("queries.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_feedback_query", "query_id"),)


class BudgetUse(Base):
    """Spend reserved and spent against one budget, subject and period (migration 0012)."""

    __tablename__ = "budget_use"

    budget: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    limit_usd: Mapped[Decimal] = mapped_column(Money)
    reserved: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    spent: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    refused: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("reserved >= 0 AND spent >= 0", name="budget_use_nonnegative"),
    )


class BudgetReservation(Base):
    """An attempt's open reservation against a budget, settled when the attempt finishes."""

    __tablename__ = "budget_reservations"

    request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("provider_requests.id", ondelete="CASCADE"), primary_key=True
    )
    budget: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount: Mapped[Decimal] = mapped_column(Money)


class ReconcilerStats(Base):
    """One row of running totals kept by the reconciler, for its metrics and for operators."""

    __tablename__ = "reconciler_stats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    republished: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    settled: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    unknown_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)


class Batch(Base):
    """A named group of summarization documents. Re-running the same job resumes its batch."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BatchDocument(Base):
    """One input of a batch: a document to summarise, or the reason it was rejected.

    ``query_id`` is the query whose answer is this document's summary: one this batch submitted,
    or, when ``reused``, one that had already summarised the same text under the same spec.
    """

    __tablename__ = "batch_documents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("batches.id", ondelete="CASCADE")
    )
    doc_id: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    rejected: Mapped[str | None] = mapped_column(Text)
    query_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("queries.id", ondelete="SET NULL")
    )
    reused: Mapped[bool] = mapped_column(default=False, server_default="false")
    submissions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    position: Mapped[int | None] = mapped_column(Integer)  # in the first producer's input
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("batch_id", "doc_id", name="uq_batch_documents_doc"),
        Index("ix_batch_documents_query", "query_id"),
    )
