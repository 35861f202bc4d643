-- routeq report: query_report_between (the query_report view's rows of one period;
-- migration 0008) grouped by one dimension, over a
-- period and optionally one batch. :by is one of tier (the tier the router chose), model (the
-- model of the kept answer), day (UTC), user, tag, policy (name@version); rows with no value
-- for it group under NULL; the row with is_total is the whole period. Rates are left to the caller, which divides these sums. Feedback
-- (query_feedback, migration 0009) and the re-runs it bought are counted on the rated query's
-- group; a re-run's cost is reported apart from the group's own. So are shadows
-- (shadow_comparisons, migration 0010), counted on their original's group: what they cost, how
-- many were compared (both answers have a verdict), how often the shadow's answer was better,
-- and the sums of the quality gain (shadow minus original) and of its square, for a mean and
-- its confidence interval.
WITH picked AS (
    SELECT r.*, coalesce(f.ratings, 0) AS ratings, coalesce(f.thumbs_down, 0) AS thumbs_down,
           coalesce(rq.total_cost, 0) AS rerun_cost,
           coalesce(sc.shadows, 0) AS shadows, coalesce(sc.shadow_cost, 0) AS shadow_cost,
           coalesce(sc.compared, 0) AS shadows_compared,
           coalesce(sc.shadow_wins, 0) AS shadow_wins,
           sc.gain_sum, sc.gain_square_sum,
           CASE CAST(:by AS text)
               WHEN 'tier' THEN r.routed_tier
               WHEN 'model' THEN r.final_model
               WHEN 'day' THEN to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'user' THEN r.user_id
               WHEN 'tag' THEN r.tag
               WHEN 'policy' THEN r.policy || coalesce('@' || r.policy_version, '')
           END AS grp
    -- the period is the function's argument, so only its queries' hops are read
    FROM query_report_between(CAST(:since AS timestamptz), CAST(:until AS timestamptz)) r
    LEFT JOIN query_feedback f ON f.query_id = r.query_id
    LEFT JOIN queries rq ON rq.id = f.rerun_query_id
    LEFT JOIN (
        SELECT c.query_id, count(*) AS shadows, sum(c.shadow_cost) AS shadow_cost,
               count(c.quality_gain) AS compared,
               count(*) FILTER (WHERE c.quality_gain > 0) AS shadow_wins,
               sum(c.quality_gain) AS gain_sum, sum(c.quality_gain ^ 2) AS gain_square_sum
        FROM shadow_comparisons c
        WHERE (CAST(:since AS timestamptz) IS NULL OR c.created_at >= CAST(:since AS timestamptz))
          AND (CAST(:until AS timestamptz) IS NULL OR c.created_at < CAST(:until AS timestamptz))
        GROUP BY c.query_id
    ) sc ON sc.query_id = r.query_id
    WHERE (CAST(:batch AS uuid) IS NULL OR r.batch_id = CAST(:batch AS uuid))
)
SELECT grp, GROUPING(grp) = 1 AS is_total,
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
       count(*) FILTER (WHERE ratings > 0) AS rated,
       count(*) FILTER (WHERE thumbs_down > 0) AS thumbs_down,
       count(*) FILTER (WHERE rerun_cost > 0) AS rerun,
       sum(rerun_cost) AS rerun_cost,
       sum(shadows) AS shadows,
       sum(shadow_cost) AS shadow_cost,
       sum(shadows_compared) AS shadows_compared,
       sum(shadow_wins) AS shadow_wins,
       sum(gain_sum) AS shadow_gain_sum,
       sum(gain_square_sum) AS shadow_gain_square_sum,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY model_ms) AS model_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY model_ms) AS model_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY model_ms) AS model_p99_ms
FROM picked
GROUP BY GROUPING SETS ((grp), ())  -- every group, and the period's total, in one pass
ORDER BY is_total, grp NULLS LAST
