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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise


@dataclass(frozen=True)
class Point:
    strong_share: float
    quality: float
    pgr: float


@dataclass(frozen=True)
class Summary:
    """A curve's numbers; a share is None when the curve never reaches its target."""

    apgr: float
    cpt50: float | None
    cpt80: float | None
    share_for_95pct_strong: float | None
    weak_quality: float
    strong_quality: float


def curve(weak: Sequence[float], strong: Sequence[float], scores: Sequence[float]) -> list[Point]:
    """The router's curve, from all-weak (share 0) to all-strong (share 1)."""
    n = len(weak)
    if n == 0 or len(strong) != n or len(scores) != n:
        raise ValueError("weak, strong and scores need one value per prompt, and at least one")
    weak_mean, strong_mean = sum(weak) / n, sum(strong) / n
    gap = strong_mean - weak_mean
    if gap <= 0:
        raise ValueError(
            f"the strong model ({strong_mean:.3f}) is not better than the weak one "
            f"({weak_mean:.3f}) on these prompts: there is no gap to recover"
        )
    order = sorted(range(n), key=lambda i: -scores[i])
    total = sum(weak)
    sent = 0
    points = [_point(0, n, total, weak_mean, gap)]
    for _, group in groupby(order, key=lambda i: scores[i]):
        for i in group:
            total += strong[i] - weak[i]
            sent += 1
        points.append(_point(sent, n, total, weak_mean, gap))
    return points


def _point(sent: int, n: int, total: float, weak_mean: float, gap: float) -> Point:
    quality = total / n
    pgr = (quality - weak_mean) / gap
    return Point(sent / n, quality, pgr)


def random_curve(weak: Sequence[float], strong: Sequence[float], steps: int = 100) -> list[Point]:
    """The random router's expected curve: at share s, quality = weak + s * (strong - weak)."""
    n = len(weak)
    weak_mean, strong_mean = sum(weak) / n, sum(strong) / n
    gap = strong_mean - weak_mean
    return [
        Point(s, weak_mean + s * gap, s if gap else 0.0)
        for s in (step / steps for step in range(steps + 1))
    ]


def oracle_scores(weak: Sequence[float], strong: Sequence[float]) -> list[float]:
    """The oracle's scores: the strong model's gain over the weak one on each prompt."""
    return [s - w for w, s in zip(weak, strong, strict=True)]


def summarise(points: Sequence[Point], strong_quality: float) -> Summary:
    apgr = sum((b.strong_share - a.strong_share) * (a.pgr + b.pgr) / 2 for a, b in pairwise(points))
    weak_quality = points[0].quality
    return Summary(
        apgr=apgr,
        cpt50=share_reaching(points, lambda p: p.pgr, 0.5),
        cpt80=share_reaching(points, lambda p: p.pgr, 0.8),
        share_for_95pct_strong=share_reaching(points, lambda p: p.quality, 0.95 * strong_quality),
        weak_quality=weak_quality,
        strong_quality=strong_quality,
    )


def share_reaching(
    points: Sequence[Point], value: Callable[[Point], float], target: float
) -> float | None:
    """The least strong share at which ``value`` reaches ``target``, linear between points."""
    if value(points[0]) >= target:
        return points[0].strong_share
    for a, b in pairwise(points):
        if value(b) >= target:
            rise = value(b) - value(a)
            fraction = (target - value(a)) / rise if rise else 1.0
            return a.strong_share + fraction * (b.strong_share - a.strong_share)
    return None
