"""An evaluation run as a table and as JSON. Pure (the caller prints or writes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from routeq.evaluation.harness import Evaluation


def _share(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def rows(evaluations: Sequence[Evaluation]) -> list[list[str]]:
    """Header and one row per router: APGR, CPT(50%), CPT(80%), strong share for 95%."""
    header = ["router", "APGR", "CPT(50%)", "CPT(80%)", "strong share for 95%"]
    body = [
        [
            e.name,
            f"{e.summary.apgr:.3f}",
            _share(e.summary.cpt50),
            _share(e.summary.cpt80),
            _share(e.summary.share_for_95pct_strong),
        ]
        for e in evaluations
    ]
    return [header, *body]


def as_json(
    evaluations: Sequence[Evaluation], *, dataset: str, weak: str, strong: str, per_prompt: bool
) -> dict[str, Any]:
    """The whole run: what was measured on what, each curve, and optionally each prompt's
    score (to see which prompts a router sends where)."""
    return {
        "dataset": dataset,
        "weak_model": weak,
        "strong_model": strong,
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
