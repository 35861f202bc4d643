"""An evaluation run as a table and as JSON. Pure (the caller prints or writes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from routeq.config import TierConfig
from routeq.evaluation.cost import TierPrices
from routeq.evaluation.curve import PER
from routeq.evaluation.harness import Evaluation
from routeq.evaluation.outcomes import Example


def _share(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def money(value: float) -> str:
    """USD with four decimals: per 1,000 queries a cheap model costs cents, not dollars."""
    return f"${value:,.4f}"


def _cost_at_95(e: Evaluation) -> str:
    if e.summary.all_strong_cost_per_1k is None:
        return "-"  # not priced
    if e.summary.cost_per_1k_at_95pct is None:
        return "never"  # the curve never reaches 95% of the strong model's quality
    return money(e.summary.cost_per_1k_at_95pct)


def _saving(e: Evaluation) -> str:
    if e.summary.saving_at_95pct is None:
        return "never" if e.summary.all_strong_cost_per_1k else "-"
    return f"{e.summary.saving_at_95pct:.1%}"


def rows(evaluations: Sequence[Evaluation]) -> list[list[str]]:
    """Header and one row per router: APGR, CPT(50%), CPT(80%), strong share for 95%, and
    what that 95% point costs per 1,000 queries and saves against sending all to strong.

    All routers are measured on the same examples, so the all-weak and all-strong costs are
    one pair for the whole table: :func:`cost_caption` states them under it."""
    header = [
        "router",
        "APGR",
        "CPT(50%)",
        "CPT(80%)",
        "strong share for 95%",
        "$/1k at 95%",
        "saving vs all-strong",
    ]
    body = [
        [
            e.name,
            f"{e.summary.apgr:.3f}",
            _share(e.summary.cpt50),
            _share(e.summary.cpt80),
            _share(e.summary.share_for_95pct_strong),
            _cost_at_95(e),
            _saving(e),
        ]
        for e in evaluations
    ]
    return [header, *body]


def cost_caption(evaluations: Sequence[Evaluation], prices: TierPrices) -> str:
    """The table's cost reference: all-weak and all-strong USD per 1,000 queries, and the
    tiers whose prices they are at; empty when nothing was priced."""
    for e in evaluations:
        all_weak, all_strong = e.summary.all_weak_cost_per_1k, e.summary.all_strong_cost_per_1k
        if all_weak is not None and all_strong is not None:
            return (
                f"per 1,000 queries: all weak {money(all_weak)} at {prices.weak.name}'s prices, "
                f"all strong {money(all_strong)} at {prices.strong.name}'s"
            )
    return ""


def as_json(
    evaluations: Sequence[Evaluation],
    *,
    dataset: str,
    weak: str,
    strong: str,
    per_prompt: bool,
    prices: TierPrices | None = None,
) -> dict[str, Any]:
    """The whole run: what was measured on what, each curve, and optionally each prompt's
    score (to see which prompts a router sends where). With ``prices``, the tiers the costs
    are at (``cost_per_1k`` in each point and the summaries' cost numbers are USD per 1,000
    queries)."""
    return {
        "dataset": dataset,
        "weak_model": weak,
        "strong_model": strong,
        **({"pricing": _pricing(prices)} if prices is not None else {}),
        "routers": [
            {
                "name": e.name,
                "summary": asdict(e.summary),
                "curve": [asdict(point) for point in e.points],
                **({"scores": e.scores} if per_prompt and e.scores else {}),
            }
            for e in evaluations
        ],
    }


def _pricing(prices: TierPrices) -> dict[str, Any]:
    def tier(config: TierConfig) -> dict[str, Any]:
        return {
            "tier": config.name,
            "input_price_per_mtok": float(config.input_price_per_mtok),
            "output_price_per_mtok": float(config.output_price_per_mtok),
        }

    return {"weak": tier(prices.weak), "strong": tier(prices.strong), "per_queries": PER}


def realised_shares(examples: Sequence[Example]) -> list[tuple[str, int, dict[str, float]]]:
    """How the ledger routed the examples of an export (their ``routed`` field), per policy and
    version: the label, the number of queries and each tier's share. This is how a
    calibration's target share is checked against what it realised on real traffic."""
    by_policy: dict[str, Counter[str]] = {}
    for example in examples:
        routed = example.extra.get("routed")
        if not isinstance(routed, dict) or not routed.get("tier"):
            continue
        label = f"{routed.get('policy') or '?'} {routed.get('version') or ''}".strip()
        by_policy.setdefault(label, Counter())[str(routed["tier"])] += 1
    return [
        (label, sum(tiers.values()), {t: n / sum(tiers.values()) for t, n in sorted(tiers.items())})
        for label, tiers in sorted(by_policy.items())
    ]
