"""``routeq report --format html``: the report as one self-contained page with its plots.

The page has no script, stylesheet or image to fetch: styles are inline and each plot is an
inline SVG (``routeq.charts``), so the file can be mailed, archived or opened offline. It shows
what the text report shows (every group, the shadow A/B pairs and the judge's reliability) and
five plots:

- cost per day, stacked by the tier the router chose;
- each routed tier's share of the traffic;
- the escalation rate per day, against the ``[alerts]`` limit;
- the distribution of end-to-end latency per routed tier;
- the cost-versus-quality plane: today's routing next to everything on the top tier and
  everything on the cheapest one.

The plane's other two points are estimates, and say so. Their cost prices the kept answers'
tokens at that tier, as the all-top-tier counterfactual does. Their quality is the mean quality
of the answers that tier gave in the period: its own answers, escalations and shadows. For the
cheapest tier those are the queries routed there, and these may be easier than the rest.

``read_plot_data`` reads; ``render`` is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from sqlalchemy import Engine, text

from routeq.charts import Line, Point, colours, lines, plane, stacked_bars
from routeq.config import TierConfig
from routeq.ledger.sql import named
from routeq.pricing import counterfactual_cost
from routeq.traffic_report import (
    BUDGET_HEADINGS,
    COLUMNS,
    JUDGE_HEADINGS,
    SHADOW_HEADINGS,
    Period,
    TrafficReport,
    budget_rows,
    judge_rows,
    shadow_rows,
    shown,
)

NO_TIER = "(none)"  # queries the router never placed (they failed before routing)


@dataclass(frozen=True)
class Quality:
    verdicts: int
    mean: float


@dataclass
class PlotData:
    """The series the plots draw, per routed tier."""

    days: list[str] = field(default_factory=list)
    cost: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # tier -> day -> cost
    queries: dict[str, dict[str, int]] = field(default_factory=dict)  # tier -> day -> queries
    escalated: dict[str, dict[str, int]] = field(default_factory=dict)
    latency_s: dict[str, list[float]] = field(default_factory=dict)  # tier -> 21 quantiles
    tier_quality: dict[str, Quality] = field(default_factory=dict)
    kept_quality: Quality | None = None


def read_plot_data(engine: Engine, period: Period) -> PlotData:
    params = {"since": period.since, "until": period.until, "batch": period.batch}
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL jit = off"))  # as for the report: see read_report
        series = conn.execute(named("report_series"), params).all()
        quality = conn.execute(named("tier_quality"), params).all()
    data = PlotData()
    for row in series:
        tier = row.tier or NO_TIER
        if row.kind == "day":
            data.cost.setdefault(tier, {})[row.day] = Decimal(row.cost)
            data.queries.setdefault(tier, {})[row.day] = int(row.queries)
            data.escalated.setdefault(tier, {})[row.day] = int(row.escalated)
        elif row.latency_ms is not None:
            data.latency_s[tier] = [float(ms) / 1000 for ms in row.latency_ms]
    data.days = sorted({day for by_day in data.queries.values() for day in by_day})
    for row in quality:
        if not row.verdicts:
            continue
        measured = Quality(int(row.verdicts), float(row.quality))
        if row.tier is None:
            data.kept_quality = measured
        else:
            data.tier_quality[row.tier] = measured
    return data


def render(
    report: TrafficReport,
    data: PlotData,
    tiers: Sequence[TierConfig],
    max_escalation_rate: float | None,
    generated_at: datetime | None = None,
) -> str:
    """The whole page."""
    names = [t.name for t in tiers]
    routed = sorted(data.queries, key=lambda t: names.index(t) if t in names else len(names))
    palette = colours([*names, NO_TIER])
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>routeq report <small>{escape(_period_text(report.period))}</small></h1>",
        f'<p class="meta">generated {when} · top tier {escape(report.top_tier)}</p>',
        _headline(report),
    ]
    if report.total.queries:
        body += [
            '<section class="plots">',
            _cost_plot(data, routed, palette),
            _share_plot(report, routed, palette, data),
            _escalation_plot(data, routed, palette, max_escalation_rate),
            _latency_plot(data, routed, palette),
            _plane_plot(report, data, tiers),
            "</section>",
        ]
    else:
        body.append('<p class="empty">No queries were submitted in this period.</p>')
    body += [
        _groups_table(report),
        _shadow_section(report),
        _judge_section(report),
        _budget_section(report),
    ]
    return _PAGE.format(
        title=escape(f"routeq report {_period_text(report.period)}"), body="\n".join(body)
    )


def _period_text(period: Period) -> str:
    since = period.since.strftime("%Y-%m-%d %H:%M") if period.since else "the start"
    until = period.until.strftime("%Y-%m-%d %H:%M") if period.until else "now"
    batch = f", batch {period.batch}" if period.batch else ""
    return f"from {since} to {until}{batch}"


def _headline(report: TrafficReport) -> str:
    total = report.total
    saved = f"{1 - total.cost / total.top_tier_cost:.0%}" if total.top_tier_cost else "-"
    figures = [
        ("queries", f"{total.queries:,}"),
        ("cost", f"${total.cost:.4f}"),
        (f"all on {report.top_tier} (est.)", f"${total.top_tier_cost:.4f}"),
        ("saved", saved),
        ("escalated", f"{total.escalation_rate:.1%}"),
        ("judge pass", shown(total, "judge_pass_rate", "pct")),
        ("p95 latency", "-" if total.latency_p95_s is None else f"{total.latency_p95_s:.3g} s"),
        ("shadows", f"{total.shadows:,} (${total.shadow_cost:.4f}, apart)"),
    ]
    cells = "".join(
        f'<div class="figure"><span>{escape(label)}</span><b>{escape(value)}</b></div>'
        for label, value in figures
    )
    return f'<section class="headline">{cells}</section>'


def _cost_plot(data: PlotData, routed: list[str], palette: dict[str, str]) -> str:
    stacks = {tier: [float(data.cost[tier].get(day, 0)) for day in data.days] for tier in routed}
    return _figure(
        stacked_bars(
            "cost-by-day", "Cost per day, by routed tier", data.days, stacks, palette, _usd, "USD"
        ),
        "What the queries submitted each day (UTC) paid, every call, judge and retry included, "
        "stacked by the tier the router chose. Shadows and re-runs are not in it.",
    )


def _share_plot(
    report: TrafficReport, routed: list[str], palette: dict[str, str], data: PlotData
) -> str:
    total = report.total.queries or 1
    shares = {tier: sum(data.queries[tier].values()) / total for tier in routed}
    stacks = {tier: [shares[tier] if t == tier else 0.0 for t in routed] for tier in routed}
    return _figure(
        stacked_bars(
            "traffic-share",
            "Traffic share by routed tier",
            routed,
            stacks,
            palette,
            _pct,
            "share of queries",
        ),
        "Where the router sent the period's queries (before any escalation).",
    )


def _escalation_plot(
    data: PlotData, routed: list[str], palette: dict[str, str], limit: float | None
) -> str:
    xs = list(range(len(data.days)))
    all_rates: list[float | None] = []
    for day in data.days:
        asked = sum(data.queries[t].get(day, 0) for t in routed)
        climbed = sum(data.escalated[t].get(day, 0) for t in routed)
        all_rates.append(climbed / asked if asked else None)
    series = [Line("all queries", xs, all_rates, "#222222")]
    for tier in routed:
        rates = [
            data.escalated[tier].get(day, 0) / data.queries[tier][day]
            if data.queries[tier].get(day)
            else None
            for day in data.days
        ]
        series.append(Line(tier, xs, rates, palette[tier]))
    references = []
    if limit is not None and limit < 1:
        references.append((f"alert limit {limit:.0%}", limit, "#7f7f7f"))
    ticks = [(float(i), day) for i, day in enumerate(data.days)][:: max(1, len(xs) // 8)]
    highest = max([r for line in series for r in line.ys if r is not None], default=0.0)
    highest = max(highest, limit if limit is not None and limit < 1 else 0.0)
    return _figure(
        lines(
            "escalation-rate",
            "Escalation rate per day",
            series,
            ticks,
            (0, max(highest, 0.1)),
            _pct,
            "queries that climbed a tier",
            references=references,
        ),
        "The share of each day's queries that climbed at least one tier, overall and by the tier "
        "the router chose; past the dashed limit the cheap tier is too weak or the router too "
        "eager.",
    )


def _latency_plot(data: PlotData, routed: list[str], palette: dict[str, str]) -> str:
    steps = [i / 20 for i in range(21)]
    series = [
        Line(tier, data.latency_s[tier], steps, palette[tier])
        for tier in routed
        if tier in data.latency_s
    ]
    slowest = max((max(line.xs) for line in series), default=1.0) or 1.0
    ticks = [(slowest * i / 4, f"{slowest * i / 4:.2g} s") for i in range(5)]
    return _figure(
        lines(
            "latency-distribution",
            "End-to-end latency distribution",
            series,
            ticks,
            (0, 1),
            _pct,
            "queries finished within",
            "seconds from submission to answer",
        ),
        "For each routed tier, the share of finished queries answered within a given time "
        "(a curve further left is faster; its top is the slowest query).",
    )


def _plane_plot(report: TrafficReport, data: PlotData, tiers: Sequence[TierConfig]) -> str:
    total = report.total
    per = Decimal(total.queries or 1)
    top, cheapest = tiers[-1], tiers[0]
    points: list[Point] = []
    missing: list[str] = []
    if data.kept_quality is not None:
        points.append(
            Point(
                "routeq today",
                float(total.cost / per),
                data.kept_quality.mean,
                "#1f77b4",
                f"n={data.kept_quality.verdicts:,}",
            )
        )
    else:
        missing.append("today's answers")
    for tier, label, colour in ((top, "all on", "#2ca02c"), (cheapest, "all on", "#ff7f0e")):
        quality = data.tier_quality.get(tier.name)
        if quality is None:
            missing.append(f"{tier.name}'s answers")
            continue
        cost = counterfactual_cost(tier, total.kept_input_tokens, total.kept_output_tokens)
        points.append(
            Point(
                f"{label} {tier.name} (est.)",
                float(cost / per),
                quality.mean,
                colour,
                f"n={quality.verdicts:,}",
            )
        )
    note = f" No verdicts on {', '.join(missing)} in this period." if missing else ""
    return _figure(
        plane(
            "cost-quality",
            "Cost against quality",
            points,
            _usd,
            "cost per query (USD)",
            "mean answer quality (0-1)",
        ),
        "Today's routing against sending everything to the top tier or to the cheapest one. "
        "Quality is the judge's: score over 10, or 1/0 for pass/fail. The estimates price the "
        "kept answers' tokens at that tier, and take the quality of the answers that tier gave "
        "in the period (its own, escalations, shadows; for the cheapest tier, the queries "
        f"routed there, which may be the easier ones).{note}",
    )


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _groups_table(report: TrafficReport) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h, _, _ in COLUMNS)
    rows = []
    for figures in [*report.groups, report.total]:
        name = "all" if figures is report.total else (figures.group or NO_TIER)
        cells = "".join(f"<td>{escape(shown(figures, f, how))}</td>" for _, f, how in COLUMNS)
        css = ' class="total"' if figures is report.total else ""
        rows.append(f"<tr{css}><th>{escape(name)}</th>{cells}</tr>")
    return (
        f'<h2>By {escape(report.by)}</h2><div class="scroll"><table><thead><tr>'
        f"<th>{escape(report.by)}</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></div>"
    )


def _table(title: str, note: str, headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<h2>{escape(title)}</h2><p>{escape(note)}</p><div class="scroll"><table><thead>'
        f"<tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _shadow_section(report: TrafficReport) -> str:
    if not report.shadow_pairs:
        return (
            "<h2>Shadow A/B</h2><p>No shadow samples in this period ([shadow] enabled = true "
            "measures how often the cheaper answer was as good).</p>"
        )
    return _table(
        "Shadow A/B",
        "Accepted answers answered again on a stronger tier, with 95% intervals: how often the "
        "kept answer was as good, the shadow's quality gain (0-1), and how often the judge's "
        "side-by-side verdict agreed with its own scores.",
        SHADOW_HEADINGS,
        shadow_rows(report.shadow_pairs),
    )


def _judge_section(report: TrafficReport) -> str:
    if not report.judges:
        return ""
    return _table(
        "The judge",
        "Per tier and judge: answers kept although the judge failed (unjudged), and its "
        "agreement with people's feedback and with itself on shadows.",
        JUDGE_HEADINGS,
        judge_rows(report.judges),
    )


def _budget_section(report: TrafficReport) -> str:
    if not report.budgets:
        return ""
    return _table(
        "Budgets",
        "Each budget and subject in its current period: its limit, what was spent, the worst "
        "case of calls in flight (reserved), and the calls it refused.",
        BUDGET_HEADINGS,
        budget_rows(report.budgets),
    )


def _usd(value: float) -> str:
    return f"${value:.4g}" if value else "$0"


def _pct(value: float) -> str:
    return f"{value:.0%}"


def as_html(
    engine: Engine,
    report: TrafficReport,
    tiers: Sequence[TierConfig],
    max_escalation_rate: float | None,
) -> str:
    """Read the plots' series for the report's period and render the page."""
    return render(report, read_plot_data(engine, report.period), tiers, max_escalation_rate)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1340px; color: #222; padding: 0 16px; }}
h1 small {{ font-size: 60%; color: #555; font-weight: normal; }}
.meta {{ color: #666; margin-top: -8px; }}
.headline {{ display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }}
.figure {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }}
.figure span {{ display: block; font-size: 12px; color: #666; }}
.figure b {{ font-size: 18px; }}
.plots {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(650px, 1fr));
         gap: 12px; }}
figure {{ margin: 0; border: 1px solid #eee; border-radius: 6px; padding: 8px; }}
figcaption {{ font-size: 12px; color: #555; max-width: 640px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #eee; padding: 4px 8px; text-align: right;
          white-space: nowrap; }}
th:first-child {{ text-align: left; }}
tr.total {{ font-weight: bold; background: #f6f6f6; }}
.scroll {{ overflow-x: auto; }}
</style></head>
<body>
{body}
</body></html>
"""
