"""feedback on answers, and the view that counts it per query

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:45:00

``feedback`` holds a person's thumbs-down (or up) on an answer, with an optional comment and
the re-run it bought (``rerun_query_id``: a query of role ``rerun`` answered one tier up).
``query_feedback`` has one row per query that received feedback: how many ratings, how many
thumbs-down, and its re-run; ``routeq report`` joins it to ``query_report`` for the
thumbs-down rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUERY_FEEDBACK = """
CREATE VIEW query_feedback AS
SELECT f.query_id, count(*) AS ratings,
       count(*) FILTER (WHERE f.thumbs_down) AS thumbs_down,
       (array_agg(f.rerun_query_id ORDER BY f.id)
            FILTER (WHERE f.rerun_query_id IS NOT NULL))[1] AS rerun_query_id,
       max(f.created_at) AS last_rated_at
FROM feedback f
GROUP BY f.query_id
"""


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "query_id",
            UUID(as_uuid=True),
            sa.ForeignKey("queries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("thumbs_down", sa.Boolean, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("tier", sa.String(40)),
        sa.Column(
            "rerun_query_id", UUID(as_uuid=True), sa.ForeignKey("queries.id", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_feedback_query", "feedback", ["query_id"])
    op.execute(QUERY_FEEDBACK)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS query_feedback")
    op.drop_table("feedback")
