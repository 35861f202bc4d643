-- Budgets: each budget's use per subject in its current period (the latest period on the
-- ledger for that budget and subject), for routeq report and the metrics. Reserved is the
-- worst case of calls in flight, or of calls whose outcome is unknown (they may have been paid).
SELECT DISTINCT ON (budget, subject)
       budget, subject,
       CASE WHEN period_start = '1970-01-01 00:00:00+00' THEN NULL ELSE period_start END
           AS period_start,  -- NULL: a budget over all time
       limit_usd, spent, reserved, refused
FROM budget_use
ORDER BY budget, subject, period_start DESC
LIMIT 1000
