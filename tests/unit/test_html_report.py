"""The HTML report's page without a ledger: an empty period still renders, and every plot
appears once traffic exists (the integration test renders a real ledger in Chromium)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from routeq.config import Settings
from routeq.html_report import PlotData, Quality, render
from routeq.traffic_report import Period, TrafficReport, empty_figures

PLOTS = ("cost-by-day", "traffic-share", "escalation-rate", "latency-distribution", "cost-quality")


def report(queries: int) -> TrafficReport:
    total = replace(
        empty_figures(), queries=queries, cost=Decimal("0.02"), top_tier_cost=Decimal("0.1"),
        kept_input_tokens=1000, kept_output_tokens=500,
    )  # fmt: skip
    return TrafficReport("tier", Period(), "frontier", total, [], [], [])


def test_an_empty_period_renders_a_page_that_says_so() -> None:
    page = render(report(0), PlotData(), Settings().tiers, 0.3)
    assert page.startswith("<!doctype html>") and "No queries were submitted" in page
    assert not any(f'id="{plot}"' in page for plot in PLOTS)


def test_traffic_gets_every_plot_and_the_plane_names_what_it_could_not_measure() -> None:
    data = PlotData(
        days=["2026-12-01", "2026-12-02"],
        cost={"cheap": {"2026-12-01": Decimal("0.01"), "2026-12-02": Decimal("0.01")}},
        queries={"cheap": {"2026-12-01": 5, "2026-12-02": 5}},
        escalated={"cheap": {"2026-12-01": 1, "2026-12-02": 0}},
        latency_s={"cheap": [i / 10 for i in range(21)]},
        tier_quality={"cheap": Quality(8, 0.6)},
        kept_quality=Quality(10, 0.8),
    )
    page = render(report(10), data, Settings().tiers, 0.3)
    for plot in PLOTS:
        assert f'id="{plot}"' in page, plot
    assert "routeq today" in page and "all on cheap (est.)" in page
    # no verdict on the top tier: no point for it, and the caption says why
    assert (
        "all on frontier (est.)</text>" not in page
        and "No verdicts on frontier&#x27;s answers" in page
    )
    assert "alert limit 30%" in page and "<script" not in page


def test_budgets_get_a_table_when_there_are_any() -> None:
    from datetime import UTC, datetime

    from routeq.traffic_report import BudgetFigures

    use = BudgetFigures(
        "per-user-daily",
        "alice",
        datetime(2026, 12, 3, tzinfo=UTC),
        Decimal("2"),
        Decimal("1.5"),
        Decimal("0.1"),
        3,
    )
    assert "<h2>Budgets</h2>" not in render(report(0), PlotData(), Settings().tiers, 0.3)
    page = render(replace(report(0), budgets=[use]), PlotData(), Settings().tiers, 0.3)
    assert "<h2>Budgets</h2>" in page and "per-user-daily" in page and "80.0%" in page
