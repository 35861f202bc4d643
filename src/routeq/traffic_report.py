"""``routeq report``: what routing did over a period, grouped by tier, model, day, user, tag or
policy, read from the ``query_report`` view (migration 0008) through one named query.

The SQL sums; this module divides (rates, means) and prices the all-top-tier counterfactual at
the top tier's configured prices (``routeq.pricing``), as every other report does. A group's
"queries" are what producers submitted (answers and documents; a document's parts are in its
row), so shares add up to 1.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from rich.table import Table
from sqlalchemy import Engine, text

from routeq.config import TierConfig
from routeq.intervals import Estimate, mean_interval, wilson
from routeq.jsonout import plain
from routeq.ledger.sql import named
from routeq.pricing import counterfactual_cost

GROUPINGS = ("tier", "model", "day", "user", "tag", "policy")
Grouping = Literal["tier", "model", "day", "user", "tag", "policy"]
FORMATS = ("table", "json", "csv", "html")


@dataclass(frozen=True)
class Period:
    """Which queries a report reads: submitted in [since, until), of one batch if given."""

    since: datetime | None = None
    until: datetime | None = None
    batch: uuid.UUID | None = None


@dataclass(frozen=True)
class GroupFigures:
    """One group's figures. Rates are shares of the group's queries unless named otherwise;
    a rate or mean is None when nothing it divides by exists."""

    group: str | None
    queries: int
    share: float
    done: int
    failed: int
    cost: Decimal
    cost_per_query: Decimal
    top_tier_cost: Decimal  # its answered queries sent straight to the top tier (estimated)
    kept_input_tokens: int  # the tokens of the calls whose answers were kept, which the
    kept_output_tokens: int  # counterfactual prices at another tier
    input_tokens: int
    output_tokens: int
    escalation_rate: float
    judge_verdicts: int
    judge_pass_rate: float | None  # of verdicts
    judge_mean_score: float | None
    unjudged_share: float
    failed_share: float
    requests: int
    error_rate: float | None  # of provider requests
    rate_limited: int
    retry_rate: float | None  # of provider requests
    rated: int  # queries that received feedback
    thumbs_down_rate: float | None  # of rated queries
    rerun_cost: Decimal  # what the re-runs bought by thumbs-downs paid (not in ``cost``)
    shadows: int  # shadow A/B samples of the group's queries
    shadow_cost: Decimal  # what they paid (not in ``cost``)
    shadows_compared: int  # both answers have a verdict
    shadow_win_rate: float | None  # of compared shadows: the shadow's answer was better
    shadow_quality_gain: float | None  # mean of shadow minus kept quality (0-1 scale)
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    model_p50_s: float | None
    model_p95_s: float | None
    model_p99_s: float | None

    def figures(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShadowPair:
    """Shadow A/B between the tier that answered and the tier its shadows ran on, under one
    judge. ``as_good``: the share of compared shadows whose answer was no better than the
    one kept; ``quality_gain``: the shadow's quality minus the kept answer's (0-1 scale; above
    0, the stronger tier would have answered better); ``judge_agreement``: how often the
    judge's side-by-side verdict ranks the two answers as its separate scores do."""

    original_tier: str | None
    shadow_tier: str | None
    judge: str
    shadows: int
    done: int
    cost: Decimal
    compared: int
    as_good: Estimate | None
    quality_gain: Estimate | None
    judge_agreement: Estimate | None


@dataclass(frozen=True)
class JudgeReliability:
    """How far one judge can be trusted on one tier's answers: the share it could not grade
    and that were kept anyway, and its agreement with people's feedback and with its own
    side-by-side verdicts on shadows."""

    tier: str | None
    judge: str
    answers: int
    unjudged_share: float
    feedback_agreement: Estimate | None
    shadow_agreement: Estimate | None


@dataclass(frozen=True)
class BudgetFigures:
    """One budget's use by one subject in its current period (``[[spend.budgets]]``)."""

    budget: str
    subject: str
    period_start: datetime | None  # None: a budget over all time
    limit_usd: Decimal
    spent: Decimal
    reserved: Decimal
    refused: int

    @property
    def used_share(self) -> float:
        return float((self.spent + self.reserved) / self.limit_usd)


@dataclass(frozen=True)
class TrafficReport:
    by: str
    period: Period
    top_tier: str
    total: GroupFigures
    groups: list[GroupFigures]
    shadow_pairs: list[ShadowPair]
    judges: list[JudgeReliability]
    budgets: list[BudgetFigures] = field(default_factory=list)


def read_report(engine: Engine, by: Grouping, period: Period, top: TierConfig) -> TrafficReport:
    """Every group's figures, and the totals over the whole period."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}: one of {', '.join(GROUPINGS)}")
    params = {"since": period.since, "until": period.until, "batch": period.batch, "by": by}
    with engine.connect() as conn:
        # The planner's estimate for the aggregates is far above what they cost, which makes
        # Postgres JIT-compile the query: 1.6 s of compiling for 0.3 s of work on 40k hops.
        conn.execute(text("SET LOCAL jit = off"))
        found = conn.execute(named("traffic_report"), params).all()
        pair_rows = conn.execute(named("shadow_pairs"), params).all()
        judge_rows = conn.execute(named("judge_reliability"), params).all()
        budget_rows = conn.execute(named("budget_use")).all()
    rows = [row for row in found if not row.is_total]
    total = next((row for row in found if row.is_total), None)
    queries = int(total.queries) if total is not None else 0
    pairs = [_shadow_pair(row) for row in pair_rows]
    return TrafficReport(
        by=by,
        period=period,
        top_tier=top.name,
        total=_figures(total, queries, top, None),
        groups=[_figures(row, queries, top, row.grp) for row in rows],
        shadow_pairs=pairs,
        judges=[_judge(row, pair_rows) for row in judge_rows],
        budgets=[BudgetFigures(*row) for row in budget_rows],
    )


def _shadow_pair(row: Any) -> ShadowPair:
    compared = int(row.compared)
    return ShadowPair(
        original_tier=row.original_tier,
        shadow_tier=row.shadow_tier,
        judge=row.judge,
        shadows=int(row.shadows),
        done=int(row.done),
        cost=Decimal(row.cost),
        compared=compared,
        as_good=wilson(int(row.as_good), compared),
        quality_gain=_gain(row.gain_sum, row.gain_square_sum, compared),
        judge_agreement=wilson(int(row.agreed), int(row.pairwise)),
    )


def _judge(row: Any, pair_rows: Sequence[Any]) -> JudgeReliability:
    """A judge's figures on a tier; its shadow agreement is over the shadows of that tier's
    answers (the pairs whose original tier it is)."""
    pairs = [p for p in pair_rows if p.original_tier == row.tier and p.judge == row.judge]
    answers = int(row.answers)
    agreed, pairwise = sum(int(p.agreed) for p in pairs), sum(int(p.pairwise) for p in pairs)
    return JudgeReliability(
        tier=row.tier,
        judge=row.judge,
        answers=answers,
        unjudged_share=_ratio(row.unjudged, answers) or 0.0,
        feedback_agreement=wilson(int(row.feedback_agreed), int(row.rated)),
        shadow_agreement=wilson(agreed, pairwise),
    )


def _gain(total: Any, square_total: Any, n: int) -> Estimate | None:
    if total is None:
        return None
    return mean_interval(float(total), float(square_total), n)


def _figures(row: Any, all_queries: int, top: TierConfig, group: str | None) -> GroupFigures:
    if row is None or not row.queries:  # an empty period still has its total row
        return empty_figures()
    queries = int(row.queries)
    requests = int(row.requests or 0)
    cost = Decimal(row.cost)
    return GroupFigures(
        group=group,
        queries=queries,
        share=_ratio(queries, all_queries) or 0.0,
        done=int(row.done),
        failed=int(row.failed),
        cost=cost,
        cost_per_query=(cost / queries).quantize(Decimal("0.0000000001")),
        top_tier_cost=counterfactual_cost(
            top, int(row.top_tier_input_tokens or 0), int(row.top_tier_output_tokens or 0)
        ),
        kept_input_tokens=int(row.top_tier_input_tokens or 0),
        kept_output_tokens=int(row.top_tier_output_tokens or 0),
        input_tokens=int(row.input_tokens or 0),
        output_tokens=int(row.output_tokens or 0),
        escalation_rate=_ratio(row.escalated, queries) or 0.0,
        judge_verdicts=int(row.judge_verdicts or 0),
        judge_pass_rate=_ratio(row.judge_passes, row.judge_verdicts),
        judge_mean_score=_ratio(row.judge_score_sum, row.judge_scored),
        unjudged_share=_ratio(row.accepted_unjudged, queries) or 0.0,
        failed_share=_ratio(row.failed, queries) or 0.0,
        requests=requests,
        error_rate=_ratio(row.request_errors, requests),
        rate_limited=int(row.rate_limited or 0),
        retry_rate=_ratio(row.retried_requests, requests),
        rated=int(row.rated or 0),
        thumbs_down_rate=_ratio(row.thumbs_down, row.rated),
        rerun_cost=Decimal(row.rerun_cost or 0),
        shadows=int(row.shadows or 0),
        shadow_cost=Decimal(row.shadow_cost or 0),
        shadows_compared=int(row.shadows_compared or 0),
        shadow_win_rate=_ratio(row.shadow_wins, row.shadows_compared),
        shadow_quality_gain=_ratio(row.shadow_gain_sum, row.shadows_compared),
        latency_p50_s=_seconds(row.latency_p50_ms),
        latency_p95_s=_seconds(row.latency_p95_ms),
        latency_p99_s=_seconds(row.latency_p99_ms),
        model_p50_s=_seconds(row.model_p50_ms),
        model_p95_s=_seconds(row.model_p95_ms),
        model_p99_s=_seconds(row.model_p99_ms),
    )


def empty_figures() -> GroupFigures:
    """The figures of a period with no queries: counts and sums 0, rates and means unknown."""
    zero = Decimal(0)
    return GroupFigures(
        group=None, queries=0, share=0.0, done=0, failed=0, cost=zero, cost_per_query=zero,
        top_tier_cost=zero, kept_input_tokens=0, kept_output_tokens=0, input_tokens=0,
        output_tokens=0, escalation_rate=0.0,
        judge_verdicts=0, judge_pass_rate=None, judge_mean_score=None, unjudged_share=0.0,
        failed_share=0.0, requests=0, error_rate=None, rate_limited=0, retry_rate=None,
        rated=0, thumbs_down_rate=None, rerun_cost=zero, shadows=0, shadow_cost=zero,
        shadows_compared=0, shadow_win_rate=None, shadow_quality_gain=None, latency_p50_s=None,
        latency_p95_s=None, latency_p99_s=None, model_p50_s=None, model_p95_s=None,
        model_p99_s=None,
    )  # fmt: skip


def _ratio(part: Any, whole: Any) -> float | None:
    if part is None or not whole:
        return None
    return float(part) / float(whole)


def _seconds(ms: Any) -> float | None:
    return None if ms is None else float(ms) / 1000


# --- output --------------------------------------------------------------------------------

# (heading, figure, how to show it) for the table; json and csv carry every figure.
COLUMNS: Sequence[tuple[str, str, str]] = (
    ("queries", "queries", "int"),
    ("share", "share", "pct"),
    ("$/query", "cost_per_query", "usd"),
    ("cost", "cost", "usd"),
    ("all-top $", "top_tier_cost", "usd"),
    ("pass", "judge_pass_rate", "pct"),
    ("score", "judge_mean_score", "num"),
    ("escalated", "escalation_rate", "pct"),
    ("unjudged", "unjudged_share", "pct"),
    ("errors", "error_rate", "pct"),
    ("retries", "retry_rate", "pct"),
    ("thumbs-down", "thumbs_down_rate", "pct"),
    ("shadow wins", "shadow_win_rate", "pct"),
    ("p50 s", "latency_p50_s", "num"),
    ("p95 s", "latency_p95_s", "num"),
    ("p99 s", "latency_p99_s", "num"),
    ("model p95 s", "model_p95_s", "num"),
    ("tokens in/out", "tokens", "tokens"),
)


def shown(figures: GroupFigures, figure: str, how: str) -> str:
    if how == "tokens":
        return f"{figures.input_tokens:,}/{figures.output_tokens:,}"
    value = getattr(figures, figure)
    if value is None:
        return "-"
    if how == "pct":
        return f"{value:.1%}"
    if how == "usd":
        return f"${value:.6f}"
    if how == "num":
        return f"{value:.3g}"
    return f"{value:,}"


def as_tables(report: TrafficReport) -> list[Table]:
    """The groups' table; then, when the period has any, the shadow A/B pairs and the judges'
    reliability."""
    table = Table(title=f"routeq report by {report.by} (top tier: {report.top_tier})")
    table.add_column(report.by)
    for heading, _, _ in COLUMNS:
        table.add_column(heading, justify="right")
    for figures in [*report.groups, report.total]:
        name = "all" if figures is report.total else (figures.group or "(none)")
        table.add_row(name, *(shown(figures, f, how) for _, f, how in COLUMNS))
    tables = [table]
    if report.shadow_pairs:
        tables.append(_shadow_table(report.shadow_pairs))
    if report.judges:
        tables.append(_judge_table(report.judges))
    if report.budgets:
        title = "budgets: spend against each limit in its current period"
        tables.append(_text_table(title, BUDGET_HEADINGS, budget_rows(report.budgets)))
    return tables


SHADOW_HEADINGS = ("answered on", "shadow on", "judge", "shadows", "compared", "as good",
                   "quality gain", "judge agrees", "shadow cost")  # fmt: skip
JUDGE_HEADINGS = ("tier", "judge", "answers", "unjudged", "agrees with feedback",
                  "agrees with itself on shadows")  # fmt: skip


BUDGET_HEADINGS = ("budget", "subject", "period from", "limit", "spent", "reserved", "used",
                   "calls refused")  # fmt: skip


def budget_rows(budgets: Sequence[BudgetFigures]) -> list[tuple[str, ...]]:
    """The budget table's rows, as text."""
    return [
        (
            use.budget,
            use.subject,
            "all time" if use.period_start is None else f"{use.period_start:%Y-%m-%d}",
            f"${use.limit_usd:.6f}",
            f"${use.spent:.6f}",
            f"${use.reserved:.6f}",
            f"{use.used_share:.1%}",
            f"{use.refused:,}",
        )
        for use in budgets
    ]


def shadow_rows(pairs: Sequence[ShadowPair]) -> list[tuple[str, ...]]:
    """The shadow A/B table's rows, as text (the table and the HTML page show the same)."""
    return [
        (
            pair.original_tier or "-",
            pair.shadow_tier or "-",
            pair.judge,
            f"{pair.shadows:,}",
            f"{pair.compared:,}",
            interval_text(pair.as_good, "pct"),
            interval_text(pair.quality_gain, "signed"),
            interval_text(pair.judge_agreement, "pct"),
            f"${pair.cost:.6f}",
        )
        for pair in pairs
    ]


def judge_rows(judges: Sequence[JudgeReliability]) -> list[tuple[str, ...]]:
    """The judge table's rows, as text."""
    return [
        (
            judge.tier or "-",
            judge.judge,
            f"{judge.answers:,}",
            f"{judge.unjudged_share:.1%}",
            interval_text(judge.feedback_agreement, "pct"),
            interval_text(judge.shadow_agreement, "pct"),
        )
        for judge in judges
    ]


def _shadow_table(pairs: Sequence[ShadowPair]) -> Table:
    title = "shadow A/B: accepted answers answered again on a stronger tier (95% intervals)"
    return _text_table(title, SHADOW_HEADINGS, shadow_rows(pairs))


def _judge_table(judges: Sequence[JudgeReliability]) -> Table:
    title = "the judge: answers it could not grade, and its agreement (95% intervals)"
    return _text_table(title, JUDGE_HEADINGS, judge_rows(judges))


def _text_table(title: str, headings: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title)
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "judge" else "right")
    for row in rows:
        table.add_row(*row)
    return table


def interval_text(estimate: Estimate | None, how: str) -> str:
    """``92.0% [85.1-96.0%] n=50``; ``-`` when nothing was measured."""
    if estimate is None:
        return "-"
    if how == "pct":
        return f"{estimate.value:.1%} [{estimate.low:.1%}-{estimate.high:.1%}] n={estimate.n:,}"
    return f"{estimate.value:+.3f} [{estimate.low:+.3f}, {estimate.high:+.3f}] n={estimate.n:,}"


def as_json(report: TrafficReport) -> str:
    document = {
        "by": report.by,
        "period": asdict(report.period),
        "top_tier": report.top_tier,
        "total": report.total.figures(),
        "groups": [g.figures() for g in report.groups],
        "shadow_pairs": [asdict(pair) for pair in report.shadow_pairs],
        "judges": [asdict(judge) for judge in report.judges],
        "budgets": [asdict(use) for use in report.budgets],
    }
    return json.dumps(plain(document), indent=2)


def as_csv(report: TrafficReport) -> str:
    out = io.StringIO()
    fields = ["scope", *report.total.figures()]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for figures in [*report.groups, report.total]:
        scope = "total" if figures is report.total else "group"
        writer.writerow({"scope": scope, **plain(figures.figures())})
    return out.getvalue()
