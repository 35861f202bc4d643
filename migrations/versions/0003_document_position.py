"""batch documents keep their place in the input, so results come back in input order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 17:55:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("batch_documents", sa.Column("position", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("batch_documents", "position")
