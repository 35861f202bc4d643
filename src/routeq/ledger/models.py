"""The hop ledger's tables (ENGINEERING.md §2). Postgres is the truth; Redis only delivers.

``queries`` holds one row per submitted query; ``hops`` one row per step of its journey (route,
call, judge), unique on ``(query_id, seq)`` so a redelivered message cannot record a step twice;
``provider_requests`` one row per HTTP request to a model, so retries and their cost are never lost.
Large texts (prompt, answers) sit in their own columns, stored out of line by Postgres (TOAST), so
scans of the numeric columns for reports stay narrow.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
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

# USD with ten decimals: a 5-token call at $0.15/Mtok is $0.00000075 and must not round to zero.
Money = Numeric(20, 10)


class QueryStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class HopKind(StrEnum):
    ROUTE = "route"
    CALL = "call"
    JUDGE = "judge"


class HopStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


LIVE_HOP_STATUSES = (HopStatus.QUEUED.value, HopStatus.RUNNING.value)


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
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=QueryStatus.QUEUED.value)
    final_answer: Mapped[str | None] = mapped_column(Text)
    final_tier: Mapped[str | None] = mapped_column(String(40))
    final_model: Mapped[str | None] = mapped_column(String(200))
    final_reason: Mapped[str | None] = mapped_column(Text)
    total_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status in ('queued', 'running', 'done', 'failed')", name="query_status"),
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
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    tokens_estimated: Mapped[bool] = mapped_column(default=False, server_default="false")
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))
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

    __table_args__ = (
        UniqueConstraint("query_id", "seq", name="uq_hops_query_seq"),
        CheckConstraint("kind in ('route', 'call', 'judge')", name="hop_kind"),
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
    """One HTTP request to a model, successful or not, with what it cost at the price of the day."""

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
    latency_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("outcome in ('ok', 'error', 'superseded')", name="request_outcome"),
        Index("ix_provider_requests_hop", "hop_id"),
    )
