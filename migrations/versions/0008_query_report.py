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
  ``judge_passes`` (every verdict on every answer of the family), ``judge_score_sum`` and
  ``judge_scored`` (for a mean), ``accepted_unjudged`` (the judge failed and the answer was
  kept anyway: fail open);
- the counterfactual: ``top_tier_input_tokens`` / ``top_tier_output_tokens``, the tokens of the
  calls whose answers were kept (``top_tier_counterfactual``), to price at the top tier.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUERY_REPORT = """
CREATE VIEW query_report AS
SELECT q.id AS query_id, q.role, q.status, q.created_at, q.finished_at, q.user_id,
       q.metadata->>'tag' AS tag, d.batch_id,
       r.tier AS routed_tier, r.policy, r.policy_version,
       q.final_tier, q.final_model,
       fam.cost,
       coalesce(h.input_tokens, 0) AS input_tokens,
       coalesce(h.output_tokens, 0) AS output_tokens,
       (extract(epoch FROM q.finished_at - q.created_at) * 1000)::bigint AS latency_ms,
       coalesce(h.model_ms, 0) AS model_ms,
       coalesce(h.judge_verdicts, 0) AS judge_verdicts,
       coalesce(h.judge_passes, 0) AS judge_passes,
       h.judge_score_sum,
       coalesce(h.judge_scored, 0) AS judge_scored,
       coalesce(h.accepted_unjudged, 0) AS accepted_unjudged,
       coalesce(p.requests, 0) AS requests,
       coalesce(p.request_errors, 0) AS request_errors,
       coalesce(p.rate_limited, 0) AS rate_limited,
       coalesce(p.retried_requests, 0) AS retried_requests,
       coalesce(e.escalations, 0) AS escalations,
       coalesce(c.input_tokens, 0) AS top_tier_input_tokens,
       coalesce(c.output_tokens, 0) AS top_tier_output_tokens
FROM queries q
LEFT JOIN batch_documents d ON d.id = q.batch_document_id
LEFT JOIN hops r ON r.query_id = q.id AND r.seq = 1 AND r.kind = 'route'
CROSS JOIN LATERAL (
    SELECT array_agg(f.id) AS ids, sum(f.total_cost) AS cost
    FROM queries f WHERE f.id = q.id OR f.parent_id = q.id
) fam
LEFT JOIN LATERAL (
    SELECT sum(x.input_tokens) AS input_tokens, sum(x.output_tokens) AS output_tokens,
           sum(x.latency_ms) FILTER (WHERE x.kind = 'call') AS model_ms,
           count(*) FILTER (WHERE x.kind = 'judge' AND x.passed IS NOT NULL) AS judge_verdicts,
           count(*) FILTER (WHERE x.kind = 'judge' AND x.passed) AS judge_passes,
           sum(x.judge_score) FILTER (WHERE x.kind = 'judge') AS judge_score_sum,
           count(x.judge_score) FILTER (WHERE x.kind = 'judge') AS judge_scored,
           count(*) FILTER (WHERE x.kind = 'judge' AND x.passed
                            AND x.details->>'source' = 'judge-error') AS accepted_unjudged
    FROM hops x WHERE x.query_id = ANY(fam.ids)
) h ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS requests,
           count(*) FILTER (WHERE pr.outcome = 'error') AS request_errors,
           count(*) FILTER (WHERE pr.http_status = 429) AS rate_limited,
           count(*) FILTER (WHERE pr.try_number > 1 OR pr.delivery > 1) AS retried_requests
    FROM provider_requests pr JOIN hops x ON x.id = pr.hop_id
    WHERE x.query_id = ANY(fam.ids)
) p ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS escalations FROM escalations es WHERE es.query_id = ANY(fam.ids)
) e ON true
LEFT JOIN LATERAL (
    SELECT sum(t.input_tokens) AS input_tokens, sum(t.output_tokens) AS output_tokens
    FROM top_tier_counterfactual t WHERE t.query_id = ANY(fam.ids)
) c ON true
WHERE q.role IN ('answer', 'document')
"""


def upgrade() -> None:
    op.execute(QUERY_REPORT)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS query_report")
