-- routeq report, shadow A/B: per tier pair (the tier that answered, the tier its shadows ran
-- on) and judge, over the shadows of the queries submitted in [:since, :until) (NULL: no
-- bound) and optionally of one batch. "compared" shadows have a verdict on both answers;
-- "as_good" ones were not better than the original (quality_gain <= 0). The gain's sums give
-- its mean and interval; "pairwise" counts the side-by-side verdicts and "agreed" those that
-- rank the two answers as their separate scores do (a tie agrees with equal scores).
SELECT c.original_tier, c.shadow_tier, coalesce(c.judge_model, 'heuristics') AS judge,
       count(*) AS shadows,
       count(*) FILTER (WHERE c.shadow_status = 'done') AS done,
       coalesce(sum(c.shadow_cost), 0) AS cost,
       count(c.quality_gain) AS compared,
       count(*) FILTER (WHERE c.quality_gain <= 0) AS as_good,
       sum(c.quality_gain) AS gain_sum,
       sum(c.quality_gain ^ 2) AS gain_square_sum,
       count(c.pairwise) FILTER (WHERE c.quality_gain IS NOT NULL) AS pairwise,
       count(*) FILTER (
           WHERE c.pairwise = CASE WHEN c.quality_gain > 0 THEN 'shadow'
                                   WHEN c.quality_gain < 0 THEN 'original'
                                   WHEN c.quality_gain = 0 THEN 'tie' END
       ) AS agreed
FROM shadow_comparisons c
LEFT JOIN batch_documents d ON d.id = c.batch_document_id
WHERE (CAST(:since AS timestamptz) IS NULL OR c.created_at >= CAST(:since AS timestamptz))
  AND (CAST(:until AS timestamptz) IS NULL OR c.created_at < CAST(:until AS timestamptz))
  AND (CAST(:batch AS uuid) IS NULL OR d.batch_id = CAST(:batch AS uuid))
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
