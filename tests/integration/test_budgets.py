"""Budgets on the real ledger (docs/budgets.md): reservations are atomic under concurrency, a
refused call says why, a ``cheaper`` budget moves the call down, and ``max_cost_per_query``
caps one query. The fault suite runs the same against 200 queries on real workers."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from stack import sim_config
from test_inprocess_pipeline import pipeline, run_one

from routeq.budgets import Charge
from routeq.config import BudgetConfig, RoutingConfig, RuleConfig, SpendConfig
from routeq.errors import BudgetExceededError
from routeq.ledger import Ledger
from routeq.records import ClaimState, HopStatus, NewQuery, QueryStatus
from routeq.sim import SimModel

pytestmark = pytest.mark.integration


def budget_row(ledger: Ledger, name: str, subject: str = "alice") -> Any:
    with ledger.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT * FROM budget_use WHERE budget = :name AND subject = :subject"),
            {"name": name, "subject": subject},
        ).one()


def test_concurrent_reservations_take_exactly_what_the_limit_allows(ledger: Ledger) -> None:
    # Given a claimed hop, and a budget of $0.105 that each attempt reserves $0.01 against
    [submitted] = ledger.submit([NewQuery("budget me", 2)])
    claim = ledger.claim(submitted.query_id, 1, lease_s=60, max_deliveries=3)
    assert claim.state is ClaimState.CLAIMED and claim.hop is not None
    hop = claim.hop
    charge = Charge("team", "alice", "day", Decimal("0.105"))
    granted: list[int] = []
    refused: list[BudgetExceededError] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        try:
            request = ledger.begin_request(
                hop,
                try_number=i,
                model="m",
                input_price=Decimal(1),
                output_price=Decimal(1),
                charges=[charge],
                reserve=Decimal("0.01"),
            )
        except BudgetExceededError as error:
            with lock:
                refused.append(error)
        else:
            with lock:
                granted.append(request)

    # When 40 attempts race for it from 8 threads
    threads = [threading.Thread(target=lambda k=k: [attempt(k * 5 + j) for j in range(5)])
               for k in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly 10 got a reservation, the others were refused saying why, and counted
    assert len(granted) == 10 and len(refused) == 30
    assert "budget 'team' for 'alice' cannot afford this call" in str(refused[0])
    row = budget_row(ledger, "team")
    assert (row.reserved, row.spent, row.refused) == (Decimal("0.1"), 0, 30)
    # And settling at the real cost frees the rest of each reservation
    for request in granted[:4]:
        ledger.finish_request(
            hop, request, outcome="ok", latency_ms=1, cost=Decimal("0.002"), settle_budgets=True
        )
    row = budget_row(ledger, "team")
    assert (row.reserved, row.spent) == (Decimal("0.06"), Decimal("0.008"))
    with ledger.engine.connect() as conn:
        open_reservations = conn.execute(
            sa.text("SELECT count(*) FROM budget_reservations")
        ).scalar_one()
    assert open_reservations == 6


def rules_to(tier: str) -> RoutingConfig:
    return RoutingConfig(rules=[RuleConfig(name="all", tier=tier)])


def good_sim() -> Any:
    return sim_config(
        **{
            name: SimModel(name, quality=1.0, latency_ms=0, output_tokens=40)
            for name in ("sim-small", "sim-medium", "sim-large")
        }
    )


def test_a_user_over_budget_is_refused_with_the_reason(ledger: Ledger) -> None:
    # A frontier call reserves about $0.0154 (its prompt, and 1,024 output tokens at $15/Mtok)
    # and costs about $0.0008: $0.0165 affords two calls, then no third.
    spend = SpendConfig(
        budgets=[BudgetConfig(name="daily", scope="user", limit_usd=Decimal("0.0165"))]
    )
    with pipeline(ledger, good_sim(), spend=spend, routing=rules_to("frontier")) as (runner, _):
        views = [run_one(runner, NewQuery(f"Question {i}?", 3, user="alice")) for i in range(4)]
        other = run_one(runner, NewQuery("Question from bob?", 4, user="bob"))
    statuses = [view.status for view in views]
    assert statuses[:2] == [QueryStatus.DONE] * 2 and QueryStatus.FAILED in statuses, statuses
    refused = [view for view in views if view.status is QueryStatus.FAILED]
    assert "budget 'daily' for 'alice' cannot afford this call" in (refused[0].final_reason or "")
    assert refused[0].hops[-1].status is HopStatus.FAILED
    assert other.status is QueryStatus.DONE  # bob has a budget of his own
    row = budget_row(ledger, "daily")
    assert row.spent <= Decimal("0.0165") and row.reserved == 0 and row.refused >= 1


def test_a_cheaper_budget_moves_the_call_down(ledger: Ledger) -> None:
    # A frontier call reserves about $0.015 (1,024 output tokens at $15/Mtok); cheap, $0.0006.
    spend = SpendConfig(
        budgets=[
            BudgetConfig(
                name="capped",
                scope="tag",
                tag="team",
                limit_usd=Decimal("0.005"),
                period="total",
                on_exceed="cheaper",
            )
        ]
    )
    with pipeline(ledger, good_sim(), spend=spend, routing=rules_to("frontier")) as (runner, _):
        view = run_one(runner, NewQuery("Hard question?", 3, metadata={"team": "research"}))
    assert view.status is QueryStatus.DONE
    assert view.final_tier in ("cheap", "mid")
    moved = [hop for hop in view.hops if hop.kind.value == "call"]
    assert moved[0].tier == "frontier" and moved[0].status is HopStatus.FAILED
    assert "moved to the cheaper" in (moved[1].reason or "")
    with ledger.engine.connect() as conn:
        start = conn.execute(sa.text("SELECT period_start FROM budget_use")).scalar_one()
    assert start.year == 1970  # a budget over all time has one period


def test_max_cost_per_query_refuses_a_call_that_could_pass_it(ledger: Ledger) -> None:
    spend = SpendConfig(max_cost_per_query=Decimal("0.005"))
    with pipeline(ledger, good_sim(), spend=spend, routing=rules_to("frontier")) as (runner, _):
        view = run_one(runner, "An expensive question?")
        cheap = SpendConfig(max_cost_per_query=Decimal("0.05"))
    assert view.status is QueryStatus.FAILED
    assert "max_cost_per_query ($0.005000) cannot afford this call" in (view.final_reason or "")
    with pipeline(ledger, good_sim(), spend=cheap, routing=rules_to("frontier")) as (runner, _):
        assert run_one(runner, "An affordable question?").status is QueryStatus.DONE


def test_budgets_and_their_use_are_in_the_report_and_the_metrics(
    ledger: Ledger, broker_url: str
) -> None:
    import redis

    from routeq.metrics import metric_families, read_snapshot
    from routeq.traffic_report import Period, as_tables, read_report

    spend = SpendConfig(
        budgets=[BudgetConfig(name="daily", scope="user", limit_usd=Decimal("0.0165"))]
    )
    with pipeline(ledger, good_sim(), spend=spend, routing=rules_to("frontier")) as (
        runner,
        settings,
    ):
        for i in range(4):
            run_one(runner, NewQuery(f"Question {i}?", 3, user="alice"))
    report = read_report(ledger.engine, "tier", Period(), settings.top_tier)
    (use,) = report.budgets
    assert (use.budget, use.subject, use.limit_usd) == ("daily", "alice", Decimal("0.0165"))
    assert 0 < use.spent <= use.limit_usd and use.refused >= 1
    titles = [table.title for table in as_tables(report)]
    assert "budgets: spend against each limit in its current period" in titles
    snapshot = read_snapshot(ledger.engine, redis.Redis.from_url(broker_url), [], settings)
    series = {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in metric_families(snapshot)
    }
    labels = {"budget": "daily", "subject": "alice"}
    assert series["routeq_budget_spent_usd"] == [(labels, float(use.spent))]
    assert series["routeq_budget_refused_calls"] == [(labels, float(use.refused))]


def test_a_refusal_is_counted_on_a_budgets_first_call(ledger: Ledger) -> None:
    spend = SpendConfig(
        budgets=[BudgetConfig(name="tiny", scope="user", limit_usd=Decimal("0.000001"))]
    )
    with pipeline(ledger, good_sim(), spend=spend, routing=rules_to("cheap")) as (runner, _):
        view = run_one(runner, NewQuery("Any question?", 3, user="alice"))
    assert view.status is QueryStatus.FAILED
    row = budget_row(ledger, "tiny")
    assert (row.spent, row.reserved, row.refused) == (0, 0, 1)
