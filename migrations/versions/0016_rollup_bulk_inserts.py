"""performance: a bulk submission reaches the metrics rollup in one delta per statement

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 14:30:00

Inserting a query or a hop ran the rollup's deferred row trigger at commit, once per row: a
PL/pgSQL call and an ``INSERT ... SELECT`` into ``metrics.deltas``. For a submission of 10,000
queries that was 20,000 calls and more than half of its time, though a queued route hop moves
no metric at all and a queued query only adds one to the gauge of queued queries.

* ``hops``: the insert trigger fires only when ``metrics.hop_deltas`` can emit for an inserted
  row: a call hop (it may be an escalation) or a hop inserted already finished.
* ``queries``: a query inserted live only adds one to the gauge of its status, so a
  statement-level trigger adds the statement's live rows at once, one delta per status. A query
  inserted final (a reused piece of a document) keeps the deferred row trigger, whose deltas
  read other tables at commit.

What the rollup counts is unchanged; the delta functions are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FINAL = "('done', 'failed')"
# When an inserted row can move a metric through its table's row trigger.
_INSERT_WHEN = {
    "hops": f"NEW.kind = 'call' OR NEW.status IN {_FINAL}",
    "queries": f"NEW.status IN {_FINAL}",
}


def _row_trigger(name: str, event: str, table: str, when: str | None = None) -> str:
    condition = f"WHEN ({when}) " if when else ""
    return (
        f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {condition}"
        f"EXECUTE FUNCTION metrics.on_{table}()"
    )


_LIVE_QUERY_INSERTS = f"""
CREATE FUNCTION metrics.on_query_inserts() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, metrics, pg_temp AS $$
BEGIN
    INSERT INTO metrics.deltas (name, labels, value)
    SELECT 'queries', ARRAY[status::text], count(*)::numeric
    FROM inserted WHERE status NOT IN {_FINAL}
    GROUP BY status;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    for table, when in _INSERT_WHEN.items():
        op.execute(f"DROP TRIGGER metrics_rollup ON {table}")
        op.execute(_row_trigger("metrics_rollup", "DELETE", table))
        op.execute(_row_trigger("metrics_rollup_insert", "INSERT", table, when))
    op.execute(_LIVE_QUERY_INSERTS)
    op.execute(
        "CREATE TRIGGER metrics_rollup_live_inserts AFTER INSERT ON queries "
        "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
        "EXECUTE FUNCTION metrics.on_query_inserts()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER metrics_rollup_live_inserts ON queries")
    op.execute("DROP FUNCTION metrics.on_query_inserts()")
    for table in _INSERT_WHEN:
        op.execute(f"DROP TRIGGER metrics_rollup_insert ON {table}")
        op.execute(f"DROP TRIGGER metrics_rollup ON {table}")
        op.execute(_row_trigger("metrics_rollup", "INSERT OR DELETE", table))
