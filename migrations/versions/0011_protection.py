"""provider protection: deliveries that only waited for capacity do not count against the cap

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 06:30:00

A call whose endpoints were all unavailable (breakers open, rate limits spent, a provider's
``Retry-After`` running) hands its hop back and waits. ``hops.waits`` counts those deliveries, so
the delivery cap (``retry.max_deliveries``) counts only deliveries that tried and failed:
``attempts - waits``. ``attempts`` itself stays the fencing token and only ever grows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hops", sa.Column("waits", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("hops", "waits")
