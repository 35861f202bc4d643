-- The reconciler's running totals (one row).
SELECT runs, republished, settled, unknown_requests FROM reconciler_stats WHERE id = 1
