"""the ledger's vocabulary as columns: a query's role and relations, chat messages and
generation parameters, the routing policy on the route hop, and separate policy/judge scores

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:00:00

Until now a query's role lived inside its ``task`` JSON (``task->>'role'``) and one ``score``
column held a policy's score on route hops and a judge's on judge hops. Reports and the worker
read both, so they become columns: ``queries.role`` (with ``shadow_of`` and ``rerun_of`` for the
shadow and re-run queries to come), ``hops.policy``/``policy_version``/``policy_score`` on route
hops, and ``hops.judge_score`` (the old ``score``, renamed) on judge hops.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = "('answer', 'document', 'part', 'combine', 'shadow', 'rerun')"


def upgrade() -> None:
    op.add_column(
        "queries",
        sa.Column("role", sa.String(length=16), nullable=False, server_default="answer"),
    )
    # The backfills change no metric: without the rollup's triggers, a large ledger does not
    # queue one deferred trigger event per row in memory.
    op.execute("ALTER TABLE queries DISABLE TRIGGER metrics_rollup")
    op.execute(
        "update queries set role = task->>'role' "
        "where task->>'role' in ('document', 'part', 'combine')"
    )
    op.execute("ALTER TABLE queries ENABLE TRIGGER metrics_rollup")
    op.create_check_constraint("query_role", "queries", f"role in {ROLES}")
    for column in ("shadow_of", "rerun_of"):
        op.add_column(
            "queries",
            sa.Column(
                column,
                postgresql.UUID(as_uuid=True),
                sa.ForeignKey("queries.id", ondelete="SET NULL", name=f"fk_queries_{column}"),
                nullable=True,
            ),
        )
        op.create_index(
            f"ix_queries_{column}",
            "queries",
            [column],
            postgresql_where=sa.text(f"{column} is not null"),
        )
    op.create_index("ix_queries_role", "queries", ["role", "created_at"])
    op.add_column("queries", sa.Column("messages", postgresql.JSONB(), nullable=True))
    op.add_column("queries", sa.Column("params", postgresql.JSONB(), nullable=True))

    op.alter_column("hops", "score", new_column_name="judge_score")
    op.add_column("hops", sa.Column("policy", sa.String(length=80), nullable=True))
    op.add_column("hops", sa.Column("policy_version", sa.String(length=80), nullable=True))
    op.add_column("hops", sa.Column("policy_score", sa.Float(), nullable=True))
    op.execute("ALTER TABLE hops DISABLE TRIGGER metrics_rollup")
    op.execute(
        "update hops set policy_score = judge_score, judge_score = null, "
        "policy = details->>'policy' where kind = 'route'"
    )
    op.execute("ALTER TABLE hops ENABLE TRIGGER metrics_rollup")


def downgrade() -> None:
    op.execute("update hops set judge_score = policy_score where kind = 'route'")
    op.drop_column("hops", "policy_score")
    op.drop_column("hops", "policy_version")
    op.drop_column("hops", "policy")
    op.alter_column("hops", "judge_score", new_column_name="score")
    op.drop_column("queries", "params")
    op.drop_column("queries", "messages")
    op.drop_index("ix_queries_role", table_name="queries")
    for column in ("rerun_of", "shadow_of"):
        op.drop_index(f"ix_queries_{column}", table_name="queries")
        op.drop_column("queries", column)
    op.drop_constraint("query_role", "queries", type_="check")
    op.drop_column("queries", "role")
