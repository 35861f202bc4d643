"""least privilege: the metrics rollup's triggers run as the schema's owner

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 07:50:00

The triggers that keep ``metrics.deltas`` ran as the role that wrote the ledger row, so every
writer needed ``USAGE`` on schema ``metrics``, ``INSERT`` on ``metrics.deltas`` and ``SELECT``
on the views the delta functions read. A gateway that may only submit its own queries would
then have read every query's figures through those views. The trigger functions are now
``SECURITY DEFINER`` (they run as the owner who ran the migrations) with a fixed
``search_path``, so a writer needs rights on the rows it writes and nothing more
(docs/roles.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGER_FUNCTIONS = """
SELECT p.oid::regprocedure AS fn
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'metrics' AND p.prorettype = 'trigger'::regtype
"""


def _alter(clause: str) -> None:
    op.execute(
        f"DO $$ DECLARE f regprocedure; BEGIN FOR f IN {_TRIGGER_FUNCTIONS} LOOP "
        f"EXECUTE format('ALTER FUNCTION %s {clause}', f); END LOOP; END $$"
    )


def upgrade() -> None:
    _alter("SECURITY DEFINER SET search_path = public, metrics, pg_temp")


def downgrade() -> None:
    _alter("SECURITY INVOKER RESET search_path")
