"""an index for a user's history: the first-queries option counts a user's earlier queries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:40:00

``[routing.first_queries]`` asks, on every route of a query with a user, how many answer
queries that user sent before this one (at most N). Without an index on the user that count
reads the whole queries table; with one on (user_id, created_at, id), restricted to answer
queries, it reads at most N index entries.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_queries_user_history ON queries (user_id, created_at, id) "
        "WHERE user_id IS NOT NULL AND role = 'answer'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_queries_user_history")
