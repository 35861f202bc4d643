-- Training data from the ledger (docs/training-data.md): closed user queries (role 'answer')
-- with every answer a judge gave a verdict on, oldest first. ``answers`` holds one object per
-- labelled answer: a call hop that answered (done, with an output, not gated) followed by the
-- judge hop that judged it (done, with a verdict of its own: not the fail mode of a judge that
-- could not grade, source 'judge-error'). A query without such an answer has no row, so LIMIT
-- counts the lines of the export. :since and :limit may be NULL (no bound).
-- The route hop says whether exploration chose the first tier (routing.explore_share).
-- ``rating`` is a person's feedback on the kept answer (its tier is the query's final tier):
-- 'down' when any rating of it was a thumbs-down, 'up' when all were thumbs-up, else NULL.
-- The answers of the query's shadows (shadow A/B) and of the re-run a thumbs-down bought are
-- answers to the same prompt on another tier, judged the same way: they are labels of this
-- query too, after its own (``via``: 'shadow' or 'rerun'; NULL for its own answers).
-- The lateral subquery reads one query's own hops through the (query_id, seq) index; OFFSET 0
-- keeps the planner from folding the kind filter in (as in the query_journeys view).
SELECT q.id AS query_id,
       q.text,
       q.messages,
       q.created_at,
       CASE WHEN jsonb_typeof(q.metadata -> 'domain') = 'string'
            THEN q.metadata ->> 'domain' ELSE '' END AS domain,
       r.tier AS route_tier,
       r.policy,
       r.policy_version,
       coalesce(r.details -> 'explore' = 'true', false) AS explored,
       r.details ->> 'policy_choice' AS policy_choice,
       CASE WHEN jsonb_typeof(r.details -> 'explore_share') = 'number'
            THEN (r.details ->> 'explore_share')::float END AS explore_share,
       l.answers
FROM queries q
LEFT JOIN LATERAL (
    SELECT h.tier, h.details, h.policy, h.policy_version FROM hops h WHERE h.query_id = q.id AND h.seq = 1 AND h.kind = 'route'
) r ON true
CROSS JOIN LATERAL (
    SELECT jsonb_agg(
               jsonb_build_object(
                   'seq', c.seq,
                   'tier', c.tier,
                   'model', c.model,
                   'response', c.output,
                   'passed', j.passed,
                   'judge_score', j.judge_score,
                   'source', j.details ->> 'source',
                   'via', j.via,
                   'rating', (SELECT CASE WHEN count(*) = 0 THEN NULL
                                          WHEN bool_or(f.thumbs_down) THEN 'down' ELSE 'up' END
                              FROM feedback f WHERE f.query_id = q.id AND f.tier = c.tier
                                AND c.tier = q.final_tier AND j.via IS NULL)
               )
               ORDER BY j.via NULLS FIRST, c.seq
           ) AS answers
    FROM (SELECT h.*, NULL::text AS via FROM hops h WHERE h.query_id = q.id
          UNION ALL
          SELECT h.*, related.role FROM queries related JOIN hops h ON h.query_id = related.id
          WHERE (related.shadow_of = q.id OR related.rerun_of = q.id)
            AND related.role IN ('shadow', 'rerun')
          OFFSET 0) j
    JOIN hops c ON c.query_id = j.query_id AND c.seq = j.seq - 1
    WHERE j.kind = 'judge'
      AND j.status = 'done'
      AND j.passed IS NOT NULL
      AND coalesce(j.details ->> 'source', '') <> 'judge-error'
      AND c.kind = 'call'
      AND c.status = 'done'
      AND c.tier IS NOT NULL
      AND c.output IS NOT NULL
      AND NOT c.details ? 'gate'
) l
WHERE q.role = 'answer'
  AND q.status IN ('done', 'failed')
  AND q.text <> ''  -- an erased prompt (privacy none, retention) is no training example
  AND q.created_at >= coalesce(CAST(:since AS timestamptz), '-infinity')
  AND l.answers IS NOT NULL
ORDER BY q.created_at, q.id
LIMIT CAST(:limit AS bigint)
