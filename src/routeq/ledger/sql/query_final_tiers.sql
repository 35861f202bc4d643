-- How a set of queries ended: final tier (or status when it has none), with counts.
SELECT coalesce(final_tier, status) AS final, count(*) AS queries
FROM query_journeys
WHERE query_id = ANY(:query_ids)
GROUP BY 1
ORDER BY 2 DESC, 1
