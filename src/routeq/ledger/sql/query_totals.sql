-- Totals over a set of queries (the demo's): spend, escalations, final tiers, and the
-- counterfactual tokens of those that were answered.
SELECT count(*) AS queries,
       count(*) FILTER (WHERE j.status = 'done') AS done,
       count(*) FILTER (WHERE j.escalated) AS escalated,
       coalesce(sum(j.cost), 0) AS cost,
       coalesce(sum(c.cost), 0) AS comparable_cost,
       coalesce(sum(c.input_tokens), 0) AS top_tier_input_tokens,
       coalesce(sum(c.output_tokens), 0) AS top_tier_output_tokens
FROM query_journeys j
LEFT JOIN top_tier_counterfactual c ON c.query_id = j.query_id
WHERE j.query_id = ANY(:query_ids)
