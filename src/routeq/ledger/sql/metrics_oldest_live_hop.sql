-- Age of the oldest queued and running hop: one probe each of the partial index on live hops
-- (ix_hops_live; each status spelled out, so the planner can match the index's predicate).
SELECT 'queued' AS status,
       extract(epoch FROM now() - (SELECT min(created_at) FROM hops WHERE status = 'queued'))
UNION ALL
SELECT 'running',
       extract(epoch FROM now() - (SELECT min(created_at) FROM hops WHERE status = 'running'))
