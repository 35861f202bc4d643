-- Every metric's current value: one row per (metric, label values), a few hundred at most.
SELECT name, labels, value FROM metrics.totals
