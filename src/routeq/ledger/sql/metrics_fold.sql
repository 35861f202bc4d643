-- Fold the deltas the triggers appended since the last scrape into metrics.totals.
SELECT metrics.fold()
