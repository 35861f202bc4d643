"""shadow A/B: the comparison view, shadows' spend apart, and metrics that leave shadows out

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 20:40:00

A shadow (``queries.role = 'shadow'``, ``shadow_of`` its original) answers an accepted answer
again on a stronger tier, in the background, and is judged like any answer.

- ``shadow_comparisons``: one row per shadow, next to its original. Each side's verdict is the
  latest judge hop on the tier that gave its answer; a verdict the judge did not give (source
  ``judge-error``: the fail mode decided) has no quality. ``original_quality`` and
  ``shadow_quality`` are the LLM judge's score over 10 (0.1-1), or 1/0 for a pass or fail
  without a score; ``quality_gain`` is the shadow's minus the original's (positive: the stronger
  tier's answer was better). ``pairwise`` is the judge's side-by-side verdict when
  ``shadow.pairwise`` asked for one (``original``, ``shadow`` or ``tie``).
- ``batch_document_spend`` and ``batch_spend`` gain ``shadow_spent``: the part of ``spent``
  that paid for shadows of the batch's documents.
- The metrics rollup counts a finished shadow as ``shadows_finished`` rather than as a finished
  query, and leaves shadows out of end-to-end latency and the top-tier counterfactual: nobody
  waited for a shadow, and it is no answer anyone was given. Their spend and hops still count
  (they were paid for, on their tier). A compared shadow adds to ``shadows_compared`` and its
  gain to ``shadow_quality_gain`` (labels: the original's tier and the shadow's), for the
  Prometheus rule on the shadow quality drop.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHADOW_COMPARISONS = """
CREATE VIEW shadow_comparisons AS
SELECT s.id AS shadow_id, s.shadow_of AS query_id, o.created_at, s.status AS shadow_status,
       o.final_tier AS original_tier, s.final_tier AS shadow_tier, s.total_cost AS shadow_cost,
       ov.passed AS original_passed, ov.judge_score AS original_score,
       sv.passed AS shadow_passed, sv.judge_score AS shadow_score,
       ov.quality AS original_quality, sv.quality AS shadow_quality,
       sv.quality - ov.quality AS quality_gain,
       sv.details->>'pairwise' AS pairwise,
       coalesce(sv.judge_model, ov.judge_model) AS judge_model,
       o.batch_document_id
FROM queries s
JOIN queries o ON o.id = s.shadow_of
LEFT JOIN LATERAL (
    SELECT h.passed, h.judge_score, h.details, h.model AS judge_model,
           CASE WHEN h.details->>'source' = 'judge-error' THEN NULL
                ELSE coalesce(h.judge_score / 10.0, h.passed::int) END AS quality
    FROM hops h
    WHERE h.query_id = o.id AND h.kind = 'judge' AND h.status = 'done' AND h.tier = o.final_tier
    ORDER BY h.seq DESC LIMIT 1
) ov ON true
LEFT JOIN LATERAL (
    SELECT h.passed, h.judge_score, h.details, h.model AS judge_model,
           CASE WHEN h.details->>'source' = 'judge-error' THEN NULL
                ELSE coalesce(h.judge_score / 10.0, h.passed::int) END AS quality
    FROM hops h
    WHERE h.query_id = s.id AND h.kind = 'judge' AND h.status = 'done' AND h.tier = s.final_tier
    ORDER BY h.seq DESC LIMIT 1
) sv ON true
WHERE s.role = 'shadow'
"""

def _batch_document_spend(shadows: bool) -> str:
    """``batch_document_spend``, with ``shadow_spent`` or (to downgrade) as 0005 made it."""
    shadow_column = ",\n       coalesce(paid.shadow_spent, 0) AS shadow_spent" if shadows else ""
    shadow_sum = (
        ",\n           sum(q.total_cost) FILTER (WHERE q.role = 'shadow') AS shadow_spent"
        if shadows
        else ""
    )
    return f"""
CREATE VIEW batch_document_spend AS
SELECT d.batch_id, d.id AS document_id, d.doc_id, d.reused,
       CASE WHEN d.rejected IS NOT NULL THEN 'rejected'
            WHEN root.status IS NULL THEN 'unsubmitted'
            ELSE root.status END AS status,
       coalesce(paid.spent, 0) AS spent,
       coalesce(family.escalated, false) AS escalated,
       coalesce(family.input_tokens, 0) AS top_tier_input_tokens,
       coalesce(family.output_tokens, 0) AS top_tier_output_tokens{shadow_column}
FROM batch_documents d
LEFT JOIN queries root ON root.id = d.query_id
LEFT JOIN LATERAL (
    SELECT sum(q.total_cost) AS spent{shadow_sum}
    FROM queries q WHERE q.batch_document_id = d.id
) paid ON true
LEFT JOIN LATERAL (
    SELECT bool_or(j.escalated) AS escalated,
           sum(c.input_tokens) AS input_tokens,
           sum(c.output_tokens) AS output_tokens
    FROM query_journeys j
    LEFT JOIN top_tier_counterfactual c ON c.query_id = j.query_id
    WHERE j.query_id = d.query_id OR j.parent_id = d.query_id
) family ON d.query_id IS NOT NULL
"""


def _batch_spend(shadows: bool) -> str:
    shadow_column = ",\n       coalesce(sum(s.shadow_spent), 0) AS shadow_spent" if shadows else ""
    return f"""
CREATE VIEW batch_spend AS
SELECT b.id AS batch_id, b.name, count(s.document_id) AS documents,
       coalesce(sum(s.spent), 0) AS spent{shadow_column}
FROM batches b LEFT JOIN batch_document_spend s ON s.batch_id = b.id
GROUP BY b.id, b.name
"""


# The rollup's trigger and rebuild call metrics.query_deltas by name: the definition of 0005
# is kept under another name and filtered, rather than restated.
QUERY_DELTAS = """
CREATE FUNCTION metrics.query_deltas(o queries, n queries)
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
    -- a shadow done with verdicts on both answers: one comparison, and its quality gain
    SELECT x.name, ARRAY[c.original_tier, c.shadow_tier]::text[], x.value
    FROM shadow_comparisons c
    CROSS JOIN LATERAL (VALUES ('shadows_compared', 1::numeric),
                               ('shadow_quality_gain', c.quality_gain)) x(name, value)
    WHERE n.role = 'shadow' AND n.status = 'done' AND o.status IS DISTINCT FROM 'done'
      AND c.shadow_id = n.id AND c.quality_gain IS NOT NULL
$$
"""


def upgrade() -> None:
    op.execute(SHADOW_COMPARISONS)
    _replace_batch_views(shadows=True)
    op.execute(
        "ALTER FUNCTION metrics.query_deltas(queries, queries) RENAME TO query_deltas_of_0005"
    )
    op.execute(QUERY_DELTAS)


def downgrade() -> None:
    op.execute("DROP FUNCTION metrics.query_deltas(queries, queries)")
    op.execute(
        "ALTER FUNCTION metrics.query_deltas_of_0005(queries, queries) RENAME TO query_deltas"
    )
    _replace_batch_views(shadows=False)
    op.execute("DROP VIEW shadow_comparisons")


def _replace_batch_views(*, shadows: bool) -> None:
    op.execute("DROP VIEW batch_spend")
    op.execute("DROP VIEW batch_document_spend")
    op.execute(_batch_document_spend(shadows))
    op.execute(_batch_spend(shadows))
