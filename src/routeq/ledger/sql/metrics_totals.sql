-- Every metric's current value, one row per (metric, label values), a few hundred at most: the
-- rollup's totals, the deltas appended since the last fold, and the gauges of live rows
-- (metrics.live_gauges, counted now from the partial indexes on live rows). One statement, so
-- one snapshot: a query finishing meanwhile is counted once, live or finished.
SELECT name, labels, sum(value) AS value
FROM (
    SELECT name, labels, value FROM metrics.totals
    UNION ALL
    SELECT name, labels, value FROM metrics.deltas
    UNION ALL
    SELECT name, labels, value FROM metrics.live_gauges
) current
GROUP BY name, labels
