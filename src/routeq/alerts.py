"""Alert rules over a report's figures: pure, so ``routeq report --check``, its tests and the
Prometheus rules in ``ops/`` can agree on what each limit means.

A rule reads one figure of the period's totals and compares it with a limit of
``[alerts]`` (``routeq.config.AlertsConfig``). Rates are judged only when the period holds at
least ``min_queries`` queries: three escalations out of five queries is noise, not a signal.
The shadow quality drop (how much better the shadows' answers were than the answers kept, on a
0-1 scale) is judged on at least ``min_shadows`` compared shadows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from routeq.config import AlertsConfig


@dataclass(frozen=True)
class Breach:
    """One crossed limit, worded for a person reading cron mail."""

    rule: str
    value: float
    limit: float
    message: str


@dataclass(frozen=True)
class _Rule:
    name: str
    figure: str  # key in the totals
    limit_field: str  # field of AlertsConfig
    is_rate: bool
    wording: str  # "{value}" and "{limit}" are filled in
    sample: str | None = None  # the totals' count that must reach the minimum below
    min_field: str | None = None  # field of AlertsConfig: the least sample judged


RULES = (
    _Rule(
        "escalation_rate",
        "escalation_rate",
        "max_escalation_rate",
        True,
        "escalation rate {value} is above {limit}: the cheap tier is too weak for this traffic "
        "or the router too eager",
    ),
    _Rule(
        "error_rate",
        "error_rate",
        "max_error_rate",
        True,
        "provider error rate {value} is above {limit}",
    ),
    _Rule(
        "unjudged_share",
        "unjudged_share",
        "max_unjudged_share",
        True,
        "{value} of queries kept an answer the judge could not grade (limit {limit})",
    ),
    _Rule(
        "failed_share",
        "failed_share",
        "max_failed_share",
        True,
        "{value} of queries failed (limit {limit})",
    ),
    _Rule(
        "shadow_quality_drop",
        "shadow_quality_gain",
        "max_shadow_quality_drop",
        True,
        "shadow answers from a stronger tier scored {value} better than the answers kept "
        "(limit {limit}): routing is costing quality",
        sample="shadows_compared",
        min_field="min_shadows",
    ),
    _Rule(
        "cost_per_query",
        "cost_per_query",
        "max_cost_per_query",
        False,
        "cost per query ${value} is above the budget ${limit}",
    ),
    _Rule(
        "p99_latency",
        "latency_p99_s",
        "max_p99_latency_s",
        False,
        "p99 end-to-end latency {value} s is above {limit} s",
    ),
)


def breaches(
    totals: Mapping[str, float | None], queries: int, config: AlertsConfig
) -> list[Breach]:
    """The limits that ``totals`` (a report's all-traffic figures) cross, in rule order."""
    found: list[Breach] = []
    for rule in RULES:
        limit = getattr(config, rule.limit_field)
        value = totals.get(rule.figure)
        if limit is None or value is None:
            continue
        if rule.min_field is not None and rule.sample is not None:
            if (totals.get(rule.sample) or 0) < getattr(config, rule.min_field):
                continue
        elif rule.is_rate and queries < config.min_queries:
            continue
        if value > limit:
            show = _percent if rule.is_rate else _plain
            wording = rule.wording.format(value=show(value), limit=show(limit))
            found.append(Breach(rule.name, float(value), float(limit), wording))
    return found


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _plain(value: float) -> str:
    return f"{value:.6g}"
