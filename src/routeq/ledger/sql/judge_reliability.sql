-- routeq report, the judge's reliability: per answering tier and judge, over the accepted
-- answers of the queries submitted in [:since, :until) and optionally of one batch. Each
-- answer's verdict is the latest judge hop on the tier that gave it. "unjudged" answers were
-- kept although the judge failed; "rated" answers have feedback, and "feedback_agreed" ones
-- were passed by the judge and not thumbed down, or failed by it and thumbed down (an answer
-- is failed and kept when no tier above could do better).
WITH picked AS (
    SELECT q.id, q.final_tier
    FROM queries q
    LEFT JOIN batch_documents d ON d.id = q.batch_document_id
    WHERE q.role IN ('answer', 'document') AND q.status = 'done'
      AND (CAST(:since AS timestamptz) IS NULL OR q.created_at >= CAST(:since AS timestamptz))
      AND (CAST(:until AS timestamptz) IS NULL OR q.created_at < CAST(:until AS timestamptz))
      AND (CAST(:batch AS uuid) IS NULL OR d.batch_id = CAST(:batch AS uuid))
), verdicts AS (
    SELECT p.id, p.final_tier, v.model, v.passed, v.source, v.outcome
    FROM picked p
    CROSS JOIN LATERAL (
        SELECT h.model, h.passed, h.details->>'source' AS source,
               h.details->>'judge_outcome' AS outcome
        FROM hops h
        WHERE h.query_id = p.id AND h.kind = 'judge' AND h.status = 'done'
          AND h.tier = p.final_tier
        ORDER BY h.seq DESC LIMIT 1
    ) v
)
SELECT v.final_tier AS tier, coalesce(v.model, 'heuristics') AS judge,
       count(*) AS answers,
       count(*) FILTER (WHERE v.source = 'judge-error') AS unjudged,
       count(f.query_id) FILTER (WHERE v.source IS DISTINCT FROM 'judge-error') AS rated,
       count(*) FILTER (
           WHERE v.source IS DISTINCT FROM 'judge-error' AND f.query_id IS NOT NULL
             AND v.passed = (f.thumbs_down = 0)
       ) AS feedback_agreed
FROM verdicts v
LEFT JOIN query_feedback f ON f.query_id = v.id
GROUP BY 1, 2
ORDER BY 1, 2
