"""privacy: each query's mode, the hash of an erased prompt, and when its texts were erased

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 07:30:00

``queries.privacy`` is the mode decided at submission (``full``, ``redact`` or ``none``; see
``routeq.privacy``). When a query's texts are erased (mode ``none`` when it closes, or the
reconciler's retention job), ``text`` becomes empty and ``text_sha256`` keeps the hash of what
it was; token counts, costs, verdicts and every other figure stay. ``texts_erased_at`` says
when the last of its texts went (for mode ``none``, the final answer, after
``privacy.answer_hold_s``). Two partial indexes keep the reconciler's two jobs cheap: queries
whose texts are kept, by age (retention), and answers held under mode ``none``, by close.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "queries", sa.Column("privacy", sa.String(8), nullable=False, server_default="full")
    )
    op.create_check_constraint(
        "query_privacy", "queries", "privacy in ('full', 'redact', 'none')"
    )
    op.add_column("queries", sa.Column("text_sha256", sa.String(64), nullable=True))
    op.add_column(
        "queries", sa.Column("texts_erased_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_queries_texts_kept",
        "queries",
        ["created_at"],
        postgresql_where=sa.text("texts_erased_at is null"),
    )
    op.create_index(
        "ix_queries_answer_held",
        "queries",
        ["finished_at"],
        postgresql_where=sa.text("privacy = 'none' and texts_erased_at is null"),
    )


def downgrade() -> None:
    op.drop_index("ix_queries_answer_held", table_name="queries")
    op.drop_index("ix_queries_texts_kept", table_name="queries")
    op.drop_column("queries", "texts_erased_at")
    op.drop_column("queries", "text_sha256")
    op.drop_constraint("query_privacy", "queries", type_="check")
    op.drop_column("queries", "privacy")
