"""The quality curve of a two-tier router, and the numbers that summarise it. Pure.

A router gives each prompt a score: the higher, the more it wants the strong model. Sending the
``k`` highest-scored prompts to the strong model and the rest to the weak one gives one point
(strong share ``k/n``, mean quality); sweeping ``k`` from 0 to ``n`` gives the curve. Prompts
with equal scores move together (a threshold cannot split them), so the curve has a point per
distinct score, joined by straight lines.

- PGR at a point: (quality - weak) / (strong - weak), the share of the gap recovered.
- APGR: the area under PGR over the strong share, 0 to 1 (trapezoids). Random scores 0.5.
- CPT(x): the least strong share whose PGR reaches x (linear between points).
- The strong share needed for 95% of the strong model's own quality.

The random router is computed exactly, as the average over every ordering (its expected PGR at
share s is s), and the oracle orders prompts by the strong model's gain over the weak one.

Given each prompt's cost on either model (``routeq.evaluation.cost``), every point also carries
the cost per 1,000 queries of routing exactly the prompts it sends to the strong model, so the
summary can say what the 95%-quality point costs next to answering everything on one model.
Between two points, quality and cost are both taken as linear: a threshold that splits a group
of tied prompts at random gives that in expectation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise

PER = 1000
"""Costs are reported per this many queries: a single query's cost is a fraction of a cent."""


@dataclass(frozen=True)
class Point:
    """One threshold of a router: its share of strong calls, mean quality and PGR, and (when
    prices were given) USD per 1,000 queries of routing that way."""

    strong_share: float
    quality: float
    pgr: float
    cost_per_1k: float | None = None


@dataclass(frozen=True)
class Summary:
    """A curve's numbers; a share is None when the curve never reaches its target."""

    apgr: float
    cpt50: float | None
    cpt80: float | None
    share_for_95pct_strong: float | None
    weak_quality: float
    strong_quality: float
    all_weak_cost_per_1k: float | None = None
    all_strong_cost_per_1k: float | None = None
    cost_per_1k_at_95pct: float | None = None
    saving_at_95pct: float | None = None
    """The share of the all-strong cost saved at the 95%-quality point (negative if dearer)."""


def curve(
    weak: Sequence[float],
    strong: Sequence[float],
    scores: Sequence[float],
    *,
    weak_cost: Sequence[float] | None = None,
    strong_cost: Sequence[float] | None = None,
) -> list[Point]:
    """The router's curve, from all-weak (share 0) to all-strong (share 1).

    With ``weak_cost`` and ``strong_cost`` (USD of each prompt on either model), each point's
    cost adds up the strong price of the prompts it sends to the strong model and the weak
    price of the rest: which prompts those are depends on the scores, not only on the share.
    """
    n = len(weak)
    if n == 0 or len(strong) != n or len(scores) != n:
        raise ValueError("weak, strong and scores need one value per prompt, and at least one")
    costs = _costs(n, weak_cost, strong_cost)
    weak_mean, strong_mean = sum(weak) / n, sum(strong) / n
    gap = strong_mean - weak_mean
    if gap <= 0:
        raise ValueError(
            f"the strong model ({strong_mean:.3f}) is not better than the weak one "
            f"({weak_mean:.3f}) on these prompts: there is no gap to recover"
        )
    order = sorted(range(n), key=lambda i: -scores[i])
    total = sum(weak)
    spent = None if costs is None else sum(costs[0])
    sent = 0
    points = [_point(0, n, total, weak_mean, gap, spent)]
    for _, group in groupby(order, key=lambda i: scores[i]):
        for i in group:
            total += strong[i] - weak[i]
            if costs is not None and spent is not None:
                spent += costs[1][i] - costs[0][i]
            sent += 1
        points.append(_point(sent, n, total, weak_mean, gap, spent))
    return points


def _costs(
    n: int, weak_cost: Sequence[float] | None, strong_cost: Sequence[float] | None
) -> tuple[Sequence[float], Sequence[float]] | None:
    """Both cost columns checked against the prompts, or None when prices were not given."""
    if weak_cost is None and strong_cost is None:
        return None
    if weak_cost is None or strong_cost is None or len(weak_cost) != n or len(strong_cost) != n:
        raise ValueError("weak_cost and strong_cost go together, one value per prompt")
    return weak_cost, strong_cost


def _point(
    sent: int, n: int, total: float, weak_mean: float, gap: float, spent: float | None
) -> Point:
    quality = total / n
    pgr = (quality - weak_mean) / gap
    return Point(sent / n, quality, pgr, None if spent is None else spent * PER / n)


def random_curve(
    weak: Sequence[float],
    strong: Sequence[float],
    steps: int = 100,
    *,
    weak_cost: Sequence[float] | None = None,
    strong_cost: Sequence[float] | None = None,
) -> list[Point]:
    """The random router's expected curve: at share s, quality = weak + s * (strong - weak),
    and likewise its cost: a random s of the prompts costs s of the all-strong bill."""
    n = len(weak)
    weak_mean, strong_mean = sum(weak) / n, sum(strong) / n
    gap = strong_mean - weak_mean
    costs = _costs(n, weak_cost, strong_cost)
    if costs is None:
        low = high = None
    else:
        low, high = sum(costs[0]) * PER / n, sum(costs[1]) * PER / n
    return [
        Point(
            s,
            weak_mean + s * gap,
            s if gap else 0.0,
            None if low is None or high is None else low + s * (high - low),
        )
        for s in (step / steps for step in range(steps + 1))
    ]


def oracle_scores(weak: Sequence[float], strong: Sequence[float]) -> list[float]:
    """The oracle's scores: the strong model's gain over the weak one on each prompt."""
    return [s - w for w, s in zip(weak, strong, strict=True)]


def summarise(
    points: Sequence[Point], strong_quality: float, all_strong_cost: float | None = None
) -> Summary:
    """The curve's numbers; the cost ones are None unless its points carry costs.
    ``all_strong_cost`` (per 1,000 queries) is the baseline of the saving when the curve's own
    last point is not what sending everything to the strong model costs (a cascade's last
    point pays the weak call too)."""
    apgr = sum((b.strong_share - a.strong_share) * (a.pgr + b.pgr) / 2 for a, b in pairwise(points))
    weak_quality = points[0].quality
    at_95 = _crossing(points, lambda p: p.quality, 0.95 * strong_quality)
    all_weak, all_strong = points[0].cost_per_1k, points[-1].cost_per_1k
    if all_strong_cost is not None:
        all_strong = all_strong_cost
    cost_95 = None
    if at_95 is not None:
        a, b, fraction = at_95
        if a.cost_per_1k is not None and b.cost_per_1k is not None:
            cost_95 = a.cost_per_1k + fraction * (b.cost_per_1k - a.cost_per_1k)
    return Summary(
        apgr=apgr,
        cpt50=share_reaching(points, lambda p: p.pgr, 0.5),
        cpt80=share_reaching(points, lambda p: p.pgr, 0.8),
        share_for_95pct_strong=None if at_95 is None else _share_at(at_95),
        weak_quality=weak_quality,
        strong_quality=strong_quality,
        all_weak_cost_per_1k=all_weak,
        all_strong_cost_per_1k=all_strong,
        cost_per_1k_at_95pct=cost_95,
        saving_at_95pct=(1 - cost_95 / all_strong if cost_95 is not None and all_strong else None),
    )


def share_reaching(
    points: Sequence[Point], value: Callable[[Point], float], target: float
) -> float | None:
    """The least strong share at which ``value`` reaches ``target``, linear between points."""
    crossing = _crossing(points, value, target)
    return None if crossing is None else _share_at(crossing)


def _crossing(
    points: Sequence[Point], value: Callable[[Point], float], target: float
) -> tuple[Point, Point, float] | None:
    """Where ``value`` first reaches ``target``: the two points around it and how far along
    from the first (0 to 1), so that any other column can be read at the same place."""
    if value(points[0]) >= target:
        return points[0], points[0], 0.0
    for a, b in pairwise(points):
        if value(b) >= target:
            rise = value(b) - value(a)
            return a, b, (target - value(a)) / rise if rise else 1.0
    return None


def _share_at(crossing: tuple[Point, Point, float]) -> float:
    a, b, fraction = crossing
    return a.strong_share + fraction * (b.strong_share - a.strong_share)
