"""performance: the rollup's query deltas are planned once per session, not at every change

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 14:50:00

``metrics.query_deltas`` (0010) is a SQL function: Postgres plans its body, a ``UNION ALL``
with the ``shadow_comparisons`` view, at every call, and the rollup calls it at the commit of
every change of a query's status. Planning that view cost about half a millisecond per call,
twice per query (running, then done or failed), on top of statements that take a tenth of
that. As PL/pgSQL its statements are planned once per session and cached, and the comparison
of a shadow's answers is looked up only for a shadow that just finished.

The deltas are the same: everything of 0005's ``query_deltas_of_0005``, with a shadow's
``queries_finished`` counted as ``shadows_finished`` and its latency and counterfactual
figures left out; and for a shadow reaching done, its comparison with the original answer.
(``queries.role`` is never null, so a row is a shadow or it is not.)
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLPGSQL = """
CREATE OR REPLACE FUNCTION metrics.query_deltas(o queries, n queries)
RETURNS TABLE (name text, labels text[], value numeric)
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(n.role, o.role) IS DISTINCT FROM 'shadow' THEN
        RETURN QUERY SELECT d.name, d.labels, d.value FROM metrics.query_deltas_of_0005(o, n) d;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT CASE WHEN d.name = 'queries_finished' THEN 'shadows_finished' ELSE d.name END,
           d.labels, d.value
    FROM metrics.query_deltas_of_0005(o, n) d
    WHERE d.name NOT IN ('query_latency_bucket', 'query_latency_sum', 'counterfactual_tokens',
                         'counterfactual_queries', 'comparable_cost');
    IF n.status = 'done' AND o.status IS DISTINCT FROM 'done' THEN
        -- a shadow done with verdicts on both answers: one comparison, and its quality gain
        RETURN QUERY
        SELECT x.metric, ARRAY[c.original_tier, c.shadow_tier]::text[], x.amount
        FROM shadow_comparisons c
        CROSS JOIN LATERAL (VALUES ('shadows_compared', 1::numeric),
                                   ('shadow_quality_gain', c.quality_gain)) x(metric, amount)
        WHERE c.shadow_id = n.id AND c.quality_gain IS NOT NULL;
    END IF;
END $$
"""

# 0010's definition, restored on downgrade.
_SQL = """
CREATE OR REPLACE FUNCTION metrics.query_deltas(o queries, n queries)
RETURNS TABLE (name text, labels text[], value numeric)
LANGUAGE sql AS $$
    SELECT CASE WHEN kind.shadow AND d.name = 'queries_finished' THEN 'shadows_finished'
                ELSE d.name END,
           d.labels, d.value
    FROM metrics.query_deltas_of_0005(o, n) d,
         (SELECT coalesce(n.role, o.role) = 'shadow' AS shadow) kind
    WHERE NOT (kind.shadow AND d.name IN ('query_latency_bucket', 'query_latency_sum',
                                          'counterfactual_tokens', 'counterfactual_queries',
                                          'comparable_cost'))
    UNION ALL
    SELECT x.name, ARRAY[c.original_tier, c.shadow_tier]::text[], x.value
    FROM shadow_comparisons c
    CROSS JOIN LATERAL (VALUES ('shadows_compared', 1::numeric),
                               ('shadow_quality_gain', c.quality_gain)) x(name, value)
    WHERE n.role = 'shadow' AND n.status = 'done' AND o.status IS DISTINCT FROM 'done'
      AND c.shadow_id = n.id AND c.quality_gain IS NOT NULL
$$
"""


def upgrade() -> None:
    op.execute(_PLPGSQL)


def downgrade() -> None:
    op.execute(_SQL)
