"""performance: the metrics rollup's triggers fire only on changes that move a metric

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 14:00:00

Every update of a hop or a query ran its rollup trigger (a PL/pgSQL function and an
``INSERT ... SELECT`` into ``metrics.deltas``) at commit, even when the function would emit
nothing: a claim (queued to running), a lease renewal, a hop's cost. That was more than half
the time of a claim. The update triggers now carry a ``WHEN`` clause that is exactly the
condition under which their delta function emits for an update (``metrics.hop_deltas`` only
for a hop reaching done or failed; ``metrics.query_deltas`` for a status change, or a done
query's cost changing), so what the rollup counts is unchanged; inserts and deletes fire as
before (a ``WHEN`` on an insert trigger cannot read ``OLD``, hence one trigger per event).
The delta functions themselves are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# When an update of the table can move a metric: the update branch of its delta function.
_UPDATE_WHEN = {
    "hops": "NEW.status IN ('done', 'failed') AND OLD.status NOT IN ('done', 'failed')",
    "queries": (
        "OLD.status IS DISTINCT FROM NEW.status OR "
        "(OLD.status = 'done' AND NEW.total_cost IS DISTINCT FROM OLD.total_cost)"
    ),
}


def _trigger(name: str, event: str, table: str, when: str | None = None) -> str:
    condition = f"WHEN ({when}) " if when else ""
    return (
        f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {condition}"
        f"EXECUTE FUNCTION metrics.on_{table}()"
    )


def upgrade() -> None:
    for table, when in _UPDATE_WHEN.items():
        op.execute(f"DROP TRIGGER metrics_rollup ON {table}")
        op.execute(_trigger("metrics_rollup", "INSERT OR DELETE", table))
        op.execute(_trigger("metrics_rollup_update", "UPDATE", table, when))


def downgrade() -> None:
    for table in _UPDATE_WHEN:
        op.execute(f"DROP TRIGGER metrics_rollup_update ON {table}")
        op.execute(f"DROP TRIGGER metrics_rollup ON {table}")
        op.execute(_trigger("metrics_rollup", "INSERT OR UPDATE OR DELETE", table))
