"""Measuring a router on known outcomes (pure): the outcome files users bring, the quality
curve over the share of strong-model calls, and the numbers that summarise it (PGR, APGR,
CPT, the strong share for 95% of the strong model's quality), with the random router and the
oracle computed alongside. docs/evaluation.md defines each number."""
