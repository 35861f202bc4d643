-- Age of the oldest queued and running hop: one index probe each (ix_hops_live).
SELECT s.status,
       extract(epoch FROM now() - (SELECT min(h.created_at) FROM hops h WHERE h.status = s.status))
FROM (VALUES ('queued'), ('running')) AS s (status)
