"""performance: two rollup costs at every query's commits, for nothing

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:05:00

* ``metrics.bucket`` (0005) is a SQL function whose body is a query over ``unnest`` of the
  bounds. Called from the rollup's trigger functions, Postgres plans that body anew at every
  trigger firing, about 0.14 ms each here, and a query fires it twice (its model call's latency
  and its own). As PL/pgSQL it walks the same bounds with nothing to plan. Its results are the
  same: the smallest bound at or above the observation, as text, or ``+Inf``.
* The insert trigger of ``hops`` fired for every call hop (0016), to ask the ``escalations``
  view whether it is one. A query's first hop is its route (seq 1, inserted with the query),
  so a call at seq 2 has no call before it and is never an escalation: it no longer fires.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bounds of 0005, unchanged (routeq.metrics reads the buckets by these names).
_MODEL = "0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60"
_QUERY = "0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600"

_PLPGSQL = f"""
CREATE OR REPLACE FUNCTION metrics.bucket(seconds numeric, histogram text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    bound numeric;
BEGIN
    FOREACH bound IN ARRAY CASE histogram WHEN 'query' THEN ARRAY[{_QUERY}]::numeric[]
                                          ELSE ARRAY[{_MODEL}]::numeric[] END
    LOOP
        IF seconds <= bound THEN
            RETURN bound::text;
        END IF;
    END LOOP;
    RETURN '+Inf';
END $$
"""

_SQL = f"""
CREATE OR REPLACE FUNCTION metrics.bucket(seconds numeric, histogram text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(
        (SELECT min(u.bound) FROM unnest(
            CASE histogram WHEN 'query' THEN ARRAY[{_QUERY}]::numeric[]
                           ELSE ARRAY[{_MODEL}]::numeric[] END) AS u (bound)
         WHERE seconds <= u.bound)::text,
        '+Inf')
$$
"""


_FINAL = "('done', 'failed')"


def _hop_insert_trigger(when: str) -> str:
    return (
        "CREATE CONSTRAINT TRIGGER metrics_rollup_insert AFTER INSERT ON hops "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({when}) "
        "EXECUTE FUNCTION metrics.on_hops()"
    )


def upgrade() -> None:
    op.execute(_PLPGSQL)
    op.execute("DROP TRIGGER metrics_rollup_insert ON hops")
    op.execute(
        _hop_insert_trigger(f"(NEW.kind = 'call' AND NEW.seq > 2) OR NEW.status IN {_FINAL}")
    )


def downgrade() -> None:
    op.execute(_SQL)
    op.execute("DROP TRIGGER metrics_rollup_insert ON hops")
    op.execute(_hop_insert_trigger(f"NEW.kind = 'call' OR NEW.status IN {_FINAL}"))
