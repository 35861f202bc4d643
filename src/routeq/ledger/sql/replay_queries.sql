-- routeq replay: the finished answer queries submitted in [:since, :until) (NULL: no bound),
-- oldest first, at most :limit (NULL: all), with what happened to them (cost, the tiers
-- called in order, escalations) and, as JSON, each done call's answer and
-- tokens with the reply the judge gave it (the judge hop right after it, when it made a call).
-- Queries whose prompt was erased (privacy none, retention) have nothing left to replay.
SELECT q.id, q.text, q.input_tokens, q.messages, q.params, q.metadata, q.user_id,
       q.total_cost, j.tier_path AS called, j.escalations,
       (SELECT json_agg(json_build_object(
                   'tier', c.tier, 'output', c.output, 'finish_reason', c.finish_reason,
                   'input_tokens', c.input_tokens, 'output_tokens', c.output_tokens,
                   'judge_reply', v.output, 'judge_input_tokens', v.input_tokens,
                   'judge_output_tokens', v.output_tokens) ORDER BY c.seq)
        FROM hops c
        LEFT JOIN hops v ON v.query_id = c.query_id AND v.seq = c.seq + 1 AND v.kind = 'judge'
        WHERE c.query_id = q.id AND c.kind = 'call' AND c.status = 'done'
          AND NOT c.details ? 'gate') AS calls
FROM queries q
JOIN query_journeys j ON j.query_id = q.id
WHERE q.role = 'answer' AND q.status IN ('done', 'failed') AND q.text <> ''
  AND (CAST(:since AS timestamptz) IS NULL OR q.created_at >= CAST(:since AS timestamptz))
  AND (CAST(:until AS timestamptz) IS NULL OR q.created_at < CAST(:until AS timestamptz))
ORDER BY q.created_at, q.id
LIMIT CAST(:limit AS bigint)
