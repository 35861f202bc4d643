-- routeq report --format html: what its plots draw, over the queries submitted in
-- [:since, :until) (NULL: no bound) and optionally of one batch, by the tier the router chose.
-- kind 'day': per UTC day and routed tier, queries, cost and escalated queries;
-- kind 'latency': per routed tier, end-to-end and model-time quantiles at every 5%
-- (a distribution to draw as a curve, finished queries only).
WITH picked AS MATERIALIZED (
    SELECT r.created_at, r.routed_tier, r.cost, r.escalations, r.latency_ms, r.model_ms
    FROM query_report_between(CAST(:since AS timestamptz), CAST(:until AS timestamptz)) r
    WHERE (CAST(:batch AS uuid) IS NULL OR r.batch_id = CAST(:batch AS uuid))
), steps AS (
    SELECT array_agg(s / 20.0 ORDER BY s) AS at FROM generate_series(0, 20) s
)
SELECT 'day' AS kind, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       routed_tier AS tier, count(*) AS queries, coalesce(sum(cost), 0) AS cost,
       count(*) FILTER (WHERE escalations > 0) AS escalated,
       NULL::float8[] AS latency_ms, NULL::float8[] AS model_ms
FROM picked
GROUP BY 2, 3
UNION ALL
SELECT 'latency', NULL, routed_tier, count(*), NULL, NULL,
       percentile_cont((SELECT at FROM steps)) WITHIN GROUP (ORDER BY latency_ms),
       percentile_cont((SELECT at FROM steps)) WITHIN GROUP (ORDER BY model_ms)
FROM picked
WHERE latency_ms IS NOT NULL
GROUP BY routed_tier
ORDER BY 1, 2, 3
