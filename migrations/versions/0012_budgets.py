"""budgets: spend reserved and spent per budget, subject and period; the API key of a query

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:00:00

``budget_use`` has one row per configured budget (``[[spend.budgets]]``), subject (the user, tag
value, API key or batch it limits) and period (its start: the day, ISO week or month, UTC, or
1970-01-01 for a budget over all time). A provider attempt reserves its worst-case cost in
the row, in the transaction that records the attempt as pending, and only while
``spent + reserved`` stays within ``limit_usd``; finishing the attempt moves its reservation to
``spent`` at the real cost. ``budget_reservations`` holds each open reservation by request, so
finishing an attempt settles exactly what it reserved, in the period it reserved it in. An
attempt whose outcome is unknown (its worker died) keeps its reservation: it may have been
paid. ``refused`` counts the attempts the budget turned away.

``queries.api_key_id`` is the id (never the key) of the API key a query was submitted with, for
budgets by key and, later, the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(20, 10)


def upgrade() -> None:
    op.add_column("queries", sa.Column("api_key_id", sa.String(200), nullable=True))
    op.create_table(
        "budget_use",
        sa.Column("budget", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("limit_usd", MONEY, nullable=False),
        sa.Column("reserved", MONEY, nullable=False, server_default="0"),
        sa.Column("spent", MONEY, nullable=False, server_default="0"),
        sa.Column("refused", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("budget", "subject", "period_start"),
        sa.CheckConstraint("reserved >= 0 AND spent >= 0", name="budget_use_nonnegative"),
    )
    op.create_table(
        "budget_reservations",
        sa.Column(
            "request_id",
            sa.BigInteger(),
            sa.ForeignKey("provider_requests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("budget", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "budget", "subject"),
    )


def downgrade() -> None:
    op.drop_table("budget_reservations")
    op.drop_table("budget_use")
    op.drop_column("queries", "api_key_id")
