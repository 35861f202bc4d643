"""the report view: one row per query a user asked, with everything ``routeq report`` groups

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:10:00

``query_report`` has one row per query a producer submitted (role ``answer`` or ``document``;
a document's parts and combine are its family, counted in its row), so a report's "queries" are
what users asked, not how routeq split them. Per row:

- who and what: ``user_id``, ``tag`` (the metadata's ``"tag"`` string), ``batch_id``, the
  route hop's ``routed_tier``, ``policy`` and ``policy_version``, the ``final_tier`` and
  ``final_model``, ``status``;
- what it paid, over the family: ``cost`` (every hop and attempt), ``input_tokens`` and
  ``output_tokens`` (every hop), ``requests``, ``request_errors``, ``rate_limited`` and
  ``retried_requests`` (attempts after the first, or a redelivery);
- how long: ``latency_ms`` (submitted to finished) and ``model_ms`` (time in model calls);
- quality: ``escalations`` (rows of the ``escalations`` view), ``judge_verdicts`` and
  ``judge_passes`` (every verdict the judge itself gave on an answer of the family),
  ``judge_score_sum`` and ``judge_scored`` (for a mean), ``accepted_unjudged`` (the judge failed
  and the answer was kept anyway: fail open, or fail closed with no tier above);
- the counterfactual: ``top_tier_input_tokens`` / ``top_tier_output_tokens``, the tokens of the
  calls whose answers were kept (``top_tier_counterfactual``), to price at the top tier.

The rows come from ``query_report_between(since, until)``, a SQL function of the period: its
first step picks the queries submitted in it, so a report over the last hour reads that hour's
hops through the indexes, not the whole ledger; the view is the function without bounds. It
reads each table once with hash aggregates (hops per query, requests per query, queries
per family) rather than looking hops up query by query as ``query_journeys`` does: a report
over a month of traffic reads every hop anyway, and one pass over a million hops takes a
second or two where a million index lookups take a minute (``bench/report.py``). Escalations
and the counterfactual are computed as the ``escalations`` and ``top_tier_counterfactual``
views define them (the integration test checks the figures against the raw rows).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUERY_REPORT = """
CREATE FUNCTION query_report_between(since timestamptz, until timestamptz)
RETURNS TABLE (
    query_id uuid, role text, status text, created_at timestamptz, finished_at timestamptz,
    user_id text, tag text, batch_id uuid, routed_tier text, policy text,
    policy_version text, final_tier text, final_model text, cost numeric,
    input_tokens bigint, output_tokens bigint, latency_ms bigint, model_ms bigint,
    judge_verdicts bigint, judge_passes bigint, judge_score_sum numeric, judge_scored bigint,
    accepted_unjudged bigint, requests bigint, request_errors bigint, rate_limited bigint,
    retried_requests bigint, escalations bigint, top_tier_input_tokens bigint,
    top_tier_output_tokens bigint
)
LANGUAGE sql STABLE AS $$
WITH roots AS (
    -- the queries producers submitted in [since, until) (NULL: no bound)
    SELECT q.id FROM queries q
    WHERE q.role IN ('answer', 'document')
      AND (since IS NULL OR q.created_at >= since)
      AND (until IS NULL OR q.created_at < until)
), members AS (
    -- each root and the pieces it was split into (parent_id)
    SELECT f.id, f.id AS root_id, f.total_cost, f.status
    FROM queries f JOIN roots r ON r.id = f.id
    UNION ALL
    SELECT f.id, f.parent_id, f.total_cost, f.status
    FROM queries f JOIN roots r ON r.id = f.parent_id
), per_query AS (
    -- each query's hops in one pass (a hash aggregate over hops, not a lookup per query)
    SELECT h.query_id,
           sum(h.input_tokens) AS input_tokens, sum(h.output_tokens) AS output_tokens,
           sum(h.latency_ms) FILTER (WHERE h.kind = 'call') AS model_ms,
           -- a verdict is the judge's own: not the fail mode of a judge that could not grade
           count(*) FILTER (WHERE h.kind = 'judge' AND h.passed IS NOT NULL
                            AND h.details->>'source' IS DISTINCT FROM 'judge-error')
               AS judge_verdicts,
           count(*) FILTER (WHERE h.kind = 'judge' AND h.passed
                            AND h.details->>'source' IS DISTINCT FROM 'judge-error')
               AS judge_passes,
           sum(h.judge_score) FILTER (WHERE h.kind = 'judge'
                                      AND h.details->>'source' IS DISTINCT FROM 'judge-error')
               AS judge_score_sum,
           count(h.judge_score) FILTER (WHERE h.kind = 'judge'
                                        AND h.details->>'source' IS DISTINCT FROM 'judge-error')
               AS judge_scored,
           -- kept although the judge failed: fail open, or fail closed with no tier above
           -- (the judge step's judge_outcome, as the metrics' judge_errors read it)
           count(*) FILTER (WHERE h.kind = 'judge' AND h.details->>'source' = 'judge-error'
                            AND coalesce(h.details->>'judge_outcome',
                                         CASE WHEN h.passed THEN 'accepted_unjudged' END)
                                = 'accepted_unjudged') AS accepted_unjudged,
           -- the escalations view's rows: each call tier after the first one used
           greatest(count(DISTINCT h.tier)
                        FILTER (WHERE h.kind = 'call' AND NOT h.details ? 'gate') - 1,
                    0) AS escalations,
           -- top_tier_counterfactual: the tokens of the last call that answered
           (array_agg(coalesce(h.input_tokens, 0) ORDER BY h.seq DESC)
                FILTER (WHERE h.kind = 'call' AND h.status = 'done'
                        AND NOT h.details ? 'gate'))[1] AS answer_input_tokens,
           (array_agg(coalesce(h.output_tokens, 0) ORDER BY h.seq DESC)
                FILTER (WHERE h.kind = 'call' AND h.status = 'done'
                        AND NOT h.details ? 'gate'))[1] AS answer_output_tokens
    FROM hops h JOIN members m ON m.id = h.query_id
    GROUP BY h.query_id
), per_query_requests AS (
    SELECT h.query_id, count(*) AS requests,
           count(*) FILTER (WHERE pr.outcome = 'error') AS request_errors,
           count(*) FILTER (WHERE pr.http_status = 429) AS rate_limited,
           count(*) FILTER (WHERE pr.try_number > 1 OR pr.delivery > 1) AS retried_requests
    FROM provider_requests pr JOIN hops h ON h.id = pr.hop_id
    JOIN members m ON m.id = h.query_id
    GROUP BY h.query_id
), family AS (
    SELECT m.root_id,
           sum(m.total_cost) AS cost,
           sum(a.input_tokens) AS input_tokens, sum(a.output_tokens) AS output_tokens,
           sum(a.model_ms) AS model_ms,
           sum(a.judge_verdicts) AS judge_verdicts, sum(a.judge_passes) AS judge_passes,
           sum(a.judge_score_sum) AS judge_score_sum, sum(a.judge_scored) AS judge_scored,
           sum(a.accepted_unjudged) AS accepted_unjudged, sum(a.escalations) AS escalations,
           sum(a.answer_input_tokens) FILTER (WHERE m.status = 'done') AS top_input_tokens,
           sum(a.answer_output_tokens) FILTER (WHERE m.status = 'done') AS top_output_tokens,
           sum(r.requests) AS requests, sum(r.request_errors) AS request_errors,
           sum(r.rate_limited) AS rate_limited, sum(r.retried_requests) AS retried_requests
    FROM members m
    LEFT JOIN per_query a ON a.query_id = m.id
    LEFT JOIN per_query_requests r ON r.query_id = m.id
    GROUP BY 1
)
SELECT q.id, q.role::text, q.status::text, q.created_at, q.finished_at, q.user_id::text,
       CASE WHEN jsonb_typeof(q.metadata->'tag') = 'string' THEN q.metadata->>'tag' END,
       d.batch_id,
       rt.tier::text, rt.policy::text, rt.policy_version::text,
       q.final_tier::text, q.final_model::text,
       fam.cost,
       coalesce(fam.input_tokens, 0)::bigint,
       coalesce(fam.output_tokens, 0)::bigint,
       (extract(epoch FROM q.finished_at - q.created_at) * 1000)::bigint,
       CASE WHEN q.finished_at IS NOT NULL THEN coalesce(fam.model_ms, 0) END::bigint,
       coalesce(fam.judge_verdicts, 0)::bigint,
       coalesce(fam.judge_passes, 0)::bigint,
       fam.judge_score_sum,
       coalesce(fam.judge_scored, 0)::bigint,
       coalesce(fam.accepted_unjudged, 0)::bigint,
       coalesce(fam.requests, 0)::bigint,
       coalesce(fam.request_errors, 0)::bigint,
       coalesce(fam.rate_limited, 0)::bigint,
       coalesce(fam.retried_requests, 0)::bigint,
       coalesce(fam.escalations, 0)::bigint,
       coalesce(fam.top_input_tokens, 0)::bigint,
       coalesce(fam.top_output_tokens, 0)::bigint
FROM roots
JOIN queries q ON q.id = roots.id
JOIN family fam ON fam.root_id = q.id
LEFT JOIN batch_documents d ON d.id = q.batch_document_id
LEFT JOIN hops rt ON rt.query_id = q.id AND rt.seq = 1 AND rt.kind = 'route'
$$
"""

QUERY_REPORT_VIEW = """
CREATE VIEW query_report AS SELECT * FROM query_report_between(NULL, NULL)
"""


def upgrade() -> None:
    op.execute(QUERY_REPORT)
    op.execute(QUERY_REPORT_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS query_report")
    op.execute("DROP FUNCTION IF EXISTS query_report_between(timestamptz, timestamptz)")
