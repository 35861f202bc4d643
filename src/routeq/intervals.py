"""Confidence intervals for the report's measured figures. Pure.

A shadow sample is small by design (a few percent of traffic), so a rate measured on it is
reported with its interval, never alone: "the cheap answer was as good 92% of the time" means
little from 12 shadows and much from 1,200.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959964  # the normal quantile of a two-sided 95% interval


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% interval, over ``n`` observations."""

    value: float
    low: float
    high: float
    n: int


def wilson(successes: int, n: int) -> Estimate | None:
    """A share with its Wilson score interval: unlike the normal approximation it stays inside
    [0, 1] and is honest near 0 and 1, where small samples of good routing live."""
    if n <= 0:
        return None
    share = successes / n
    z2 = Z_95 * Z_95
    centre = (share + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # the bounds hold the share itself: at 0 or n successes rounding can leave it a hair outside
    low, high = max(0.0, min(share, centre - half)), min(1.0, max(share, centre + half))
    return Estimate(share, low, high, n)


def mean_interval(total: float, square_total: float, n: int) -> Estimate | None:
    """A mean with its normal-approximation interval, from the sum and the sum of squares (what
    SQL aggregates give); one observation has no spread to measure, so its interval is the
    whole possible range of a quality difference, [-1, 1]."""
    if n <= 0:
        return None
    mean = total / n
    if n == 1:
        return Estimate(mean, -1.0, 1.0, n)
    variance = max(0.0, (square_total - n * mean * mean) / (n - 1))
    half = Z_95 * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half, n)
