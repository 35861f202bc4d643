"""batches, batch documents, and split documents (child queries, combine hops)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 16:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "batch_documents",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=False),
        sa.Column("doc_id", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("rejected", sa.Text(), nullable=True),
        sa.Column("query_id", sa.UUID(), nullable=True),
        sa.Column("reused", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("submissions", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_id"], ["queries.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "doc_id", name="uq_batch_documents_doc"),
    )
    op.create_index("ix_batch_documents_query", "batch_documents", ["query_id"], unique=False)
    op.add_column("queries", sa.Column("task", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("queries", sa.Column("parent_id", sa.UUID(), nullable=True))
    op.add_column("queries", sa.Column("cache_key", sa.String(length=200), nullable=True))
    op.add_column("queries", sa.Column("batch_document_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        "queries_parent_id_fkey", "queries", "queries", ["parent_id"], ["id"], ondelete="CASCADE"
    )
    op.create_foreign_key(
        "fk_queries_batch_document",
        "queries",
        "batch_documents",
        ["batch_document_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_queries_parent",
        "queries",
        ["parent_id"],
        unique=False,
        postgresql_where=sa.text("parent_id is not null"),
    )
    op.create_index(
        "ix_queries_cache_key",
        "queries",
        ["cache_key"],
        unique=False,
        postgresql_where=sa.text("cache_key is not null"),
    )
    op.create_index(
        "ix_queries_batch_document",
        "queries",
        ["batch_document_id"],
        unique=False,
        postgresql_where=sa.text("batch_document_id is not null"),
    )
    op.drop_constraint("hop_kind", "hops", type_="check")
    op.create_check_constraint(
        "hop_kind", "hops", "kind in ('route', 'call', 'judge', 'combine')"
    )


def downgrade() -> None:
    op.drop_constraint("hop_kind", "hops", type_="check")
    op.execute("DELETE FROM hops WHERE kind = 'combine'")
    op.create_check_constraint("hop_kind", "hops", "kind in ('route', 'call', 'judge')")
    op.drop_index("ix_queries_batch_document", table_name="queries")
    op.drop_index("ix_queries_cache_key", table_name="queries")
    op.drop_index("ix_queries_parent", table_name="queries")
    op.drop_constraint("fk_queries_batch_document", "queries", type_="foreignkey")
    op.drop_constraint("queries_parent_id_fkey", "queries", type_="foreignkey")
    op.drop_column("queries", "batch_document_id")
    op.drop_column("queries", "cache_key")
    op.drop_column("queries", "parent_id")
    op.drop_column("queries", "task")
    op.drop_index("ix_batch_documents_query", table_name="batch_documents")
    op.drop_table("batch_documents")
    op.drop_table("batches")
