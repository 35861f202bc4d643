"""From predicted quality per tier to a tier. Pure.

A trained router predicts, for each tier, the probability that the tier answers well (passes
the judge, is correct). The tier chosen maximises predicted quality minus ``cost_weight``
times the tier's relative cost (the top tier costs 1). With two tiers this is a threshold on
the predicted gain of the strong tier over the cheap one, scaled by their cost gap:
``P(strong) - P(weak) > cost_weight * (c_strong - c_weak)``. Raising ``cost_weight`` sends
fewer queries up; ``routeq calibrate`` sets it from a target share or cost on sample traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from routeq.config import TierConfig

# Tokens of a typical query (in, out) to weigh input against output prices.
TYPICAL_INPUT_TOKENS = 500
TYPICAL_OUTPUT_TOKENS = 300


def relative_costs(tiers: Sequence[TierConfig]) -> NDArray[np.float64]:
    """Each tier's price of a typical query, the most expensive tier's being 1."""
    prices = [
        tier.input_price_per_mtok * TYPICAL_INPUT_TOKENS
        + tier.output_price_per_mtok * TYPICAL_OUTPUT_TOKENS
        for tier in tiers
    ]
    top = max(prices)
    if top <= Decimal(0):
        return np.zeros(len(prices))
    return np.array([float(p / top) for p in prices])


def choose(
    quality: NDArray[np.float64], costs: NDArray[np.float64], cost_weight: float
) -> NDArray[np.int64]:
    """For each row of ``quality`` (queries x tiers, cheapest tier first), the index of the tier
    maximising ``quality - cost_weight * cost``. Ties go to the cheaper tier."""
    utility = quality - cost_weight * costs[np.newaxis, :]
    chosen: NDArray[np.int64] = np.argmax(utility, axis=1)  # the first maximum: the cheapest
    return chosen


def routing_score(quality: NDArray[np.float64], costs: NDArray[np.float64]) -> NDArray[np.float64]:
    """The two-tier router's score: the cost weight above which the cheap tier wins. Queries
    sorted by it high to low are the order in which a lower and lower cost weight sends them to
    the strong tier, which is what an evaluation curve sweeps."""
    gap = float(costs[-1] - costs[0]) or 1.0
    score: NDArray[np.float64] = (quality[:, -1] - quality[:, 0]) / gap
    return score


def top_share(
    quality: NDArray[np.float64], costs: NDArray[np.float64], cost_weight: float
) -> float:
    """The share of queries ``cost_weight`` sends to the top tier."""
    return float(np.mean(choose(quality, costs, cost_weight) == quality.shape[1] - 1))


def mean_cost(
    quality: NDArray[np.float64], costs: NDArray[np.float64], cost_weight: float
) -> float:
    """The mean relative cost per query at ``cost_weight``."""
    return float(np.mean(costs[choose(quality, costs, cost_weight)]))
