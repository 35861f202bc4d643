"""renewable hop leases, provider requests on the ledger before they are sent, reconciler totals

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(20, 10)


def upgrade() -> None:
    op.add_column("hops", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("hops", sa.Column("claimed_by", sa.String(length=200), nullable=True))
    op.add_column("provider_requests", sa.Column("max_cost", MONEY, nullable=True))
    op.alter_column("provider_requests", "latency_ms", existing_type=sa.Integer(), nullable=True)
    op.drop_constraint("request_outcome", "provider_requests", type_="check")
    op.create_check_constraint(
        "request_outcome",
        "provider_requests",
        "outcome in ('pending', 'ok', 'error', 'unknown', 'superseded')",
    )
    op.create_index(
        "ix_provider_requests_pending",
        "provider_requests",
        ["hop_id"],
        unique=False,
        postgresql_where=sa.text("outcome = 'pending'"),
    )
    op.create_table(
        "reconciler_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("runs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("republished", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("settled", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("unknown_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("reconciler_stats")
    op.drop_index(
        "ix_provider_requests_pending",
        table_name="provider_requests",
        postgresql_where=sa.text("outcome = 'pending'"),
    )
    op.drop_constraint("request_outcome", "provider_requests", type_="check")
    op.execute(
        "UPDATE provider_requests SET outcome = 'error' WHERE outcome IN ('pending', 'unknown')"
    )
    op.create_check_constraint(
        "request_outcome", "provider_requests", "outcome in ('ok', 'error', 'superseded')"
    )
    op.execute("UPDATE provider_requests SET latency_ms = 0 WHERE latency_ms IS NULL")
    op.alter_column("provider_requests", "latency_ms", existing_type=sa.Integer(), nullable=False)
    op.drop_column("provider_requests", "max_cost")
    op.drop_column("hops", "claimed_by")
    op.drop_column("hops", "lease_expires_at")
