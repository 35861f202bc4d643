-- routeq report --format html, the cost-quality plane: the mean quality of the answers each
-- tier gave (tier), and of the answers kept (tier NULL), over the queries submitted in
-- [:since, :until) and optionally of one batch, with their shadows. Quality as in
-- shadow_comparisons: the judge's score over 10, or 1/0 for a pass/fail without a score;
-- verdicts the judge did not give (source judge-error) are left out.
WITH picked AS (
    SELECT q.id, q.role, q.status, q.final_tier
    FROM queries q
    LEFT JOIN batch_documents d ON d.id = q.batch_document_id
    WHERE q.role IN ('answer', 'document', 'shadow')
      AND (CAST(:since AS timestamptz) IS NULL OR q.created_at >= CAST(:since AS timestamptz))
      AND (CAST(:until AS timestamptz) IS NULL OR q.created_at < CAST(:until AS timestamptz))
      AND (CAST(:batch AS uuid) IS NULL OR d.batch_id = CAST(:batch AS uuid))
), verdicts AS (
    SELECT p.id, p.role, p.status, p.final_tier, h.tier, h.seq,
           coalesce(h.judge_score / 10.0, h.passed::int) AS quality
    FROM picked p
    JOIN hops h ON h.query_id = p.id
    WHERE h.kind = 'judge' AND h.status = 'done' AND h.passed IS NOT NULL
      AND h.details->>'source' IS DISTINCT FROM 'judge-error'
), kept AS (
    SELECT DISTINCT ON (id) quality
    FROM verdicts
    WHERE role <> 'shadow' AND status = 'done' AND tier = final_tier
    ORDER BY id, seq DESC
)
SELECT tier, count(*) AS verdicts, avg(quality) AS quality FROM verdicts GROUP BY tier
UNION ALL
SELECT NULL, count(*), avg(quality) FROM kept
