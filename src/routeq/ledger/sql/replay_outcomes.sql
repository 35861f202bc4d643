-- routeq replay, on its scratch database: each replayed query's cost, tiers called in order
-- and escalations (query_journeys, as for the queries it replays).
SELECT j.cost, j.tier_path AS called, j.escalations
FROM query_journeys j
WHERE j.parent_id IS NULL
