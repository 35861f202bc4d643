-- routeq report: the query_report view (migration 0008) grouped by one dimension, over a
-- period and optionally one batch. :by is one of tier (the tier the router chose), model (the
-- model of the kept answer), day (UTC), user, tag, policy (name@version); rows with no value
-- for it group under NULL. Rates are left to the caller, which divides these sums.
WITH picked AS (
    SELECT *,
           CASE CAST(:by AS text)
               WHEN 'tier' THEN routed_tier
               WHEN 'model' THEN final_model
               WHEN 'day' THEN to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'user' THEN user_id
               WHEN 'tag' THEN tag
               WHEN 'policy' THEN policy || coalesce('@' || policy_version, '')
           END AS grp
    FROM query_report
    WHERE (CAST(:since AS timestamptz) IS NULL OR created_at >= CAST(:since AS timestamptz))
      AND (CAST(:until AS timestamptz) IS NULL OR created_at < CAST(:until AS timestamptz))
      AND (CAST(:batch AS uuid) IS NULL OR batch_id = CAST(:batch AS uuid))
)
SELECT grp,
       count(*) AS queries,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       coalesce(sum(cost), 0) AS cost,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(top_tier_input_tokens) AS top_tier_input_tokens,
       sum(top_tier_output_tokens) AS top_tier_output_tokens,
       count(*) FILTER (WHERE escalations > 0) AS escalated,
       sum(judge_verdicts) AS judge_verdicts,
       sum(judge_passes) AS judge_passes,
       sum(judge_score_sum) AS judge_score_sum,
       sum(judge_scored) AS judge_scored,
       count(*) FILTER (WHERE accepted_unjudged > 0) AS accepted_unjudged,
       sum(requests) AS requests,
       sum(request_errors) AS request_errors,
       sum(rate_limited) AS rate_limited,
       sum(retried_requests) AS retried_requests,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY model_ms) AS model_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY model_ms) AS model_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY model_ms) AS model_p99_ms
FROM picked
GROUP BY grp
ORDER BY grp NULLS LAST
