"""Judging switches and failure modes, end to end through a real worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audit import assert_journey_consistent, ledger_rows
from stack import running_stack, sim_config

from routeq import Client, Result
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

BROKEN_JUDGE = SimModel("sim-judge", quality=1.0, latency_ms=1, judge=True, fault_500=1.0)
PERFECT_SMALL = SimModel("sim-small", quality=1.0, latency_ms=1, output_tokens=30)


def run_one(
    tmp_path: Path, migrated_url: str, broker_url: str, text: str, **stack_options: Any
) -> Result:
    with running_stack(tmp_path, migrated_url, broker_url, **stack_options) as (stack, _):
        stack.start_worker("--concurrency", "2")
        with Client(stack.settings) as client:
            return client.submit(text).wait(timeout=60)


def test_judging_off_for_a_tier_accepts_without_a_judge_hop(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    result = run_one(
        tmp_path,
        migrated_url,
        broker_url,
        "hello there",
        sim=sim_config(),
        tier_overrides={"cheap": {"judge": False}},
    )
    assert result.ok and result.tier_path == ["cheap"]
    assert [h.kind for h in result.hops] == ["route", "call"]
    assert "judging is off for cheap" in result.reason


def test_broken_judge_fails_open_by_default(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    sim = sim_config(**{"sim-small": PERFECT_SMALL, "sim-judge": BROKEN_JUDGE})
    result = run_one(tmp_path, migrated_url, broker_url, "hello there", sim=sim)
    judge_hop = result.hops[-1]
    assert result.ok and result.tier_path == ["cheap"]
    assert judge_hop.kind == "judge" and judge_hop.passed is True
    assert "fail open" in judge_hop.reason and "HTTP 500" in judge_hop.error


def test_broken_judge_fails_closed_when_configured(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    sim = sim_config(**{"sim-small": PERFECT_SMALL, "sim-judge": BROKEN_JUDGE})
    result = run_one(
        tmp_path,
        migrated_url,
        broker_url,
        "hello there",
        sim=sim,
        tier_overrides={"cheap": {"judge_fail_mode": "closed"}},
    )
    first_verdict = result.hops[2]
    assert first_verdict.passed is False and "fail closed" in first_verdict.reason
    assert result.tier_path[:2] == ["cheap", "mid"]


def test_top_tier_failure_after_escalation_keeps_the_earlier_answer(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given cheap and mid tiers that always answer badly and a top tier that is down
    sim = sim_config(
        **{
            "sim-small": SimModel("sim-small", quality=0.0, latency_ms=1),
            "sim-medium": SimModel("sim-medium", quality=0.0, latency_ms=1),
            "sim-large": SimModel("sim-large", quality=1.0, latency_ms=1, fault_500=1.0),
        }
    )
    result = run_one(tmp_path, migrated_url, broker_url, "hello there", sim=sim)

    # Then the query is answered with the last answer it got, and says why
    assert result.ok and result.tier_path == ["cheap", "mid", "frontier"]
    assert result.final_tier == "mid"
    assert "accepted the earlier answer" in (result.reason or "")
    queries, hops, requests = ledger_rows(migrated_url)
    (query,) = queries.values()
    assert_journey_consistent(query, hops[query.id], requests)


def test_top_tier_that_keeps_failing_fails_the_query_visibly(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    sim = sim_config(
        **{"sim-large": SimModel("sim-large", quality=1.0, latency_ms=1, fault_500=1.0)}
    )
    # "code" routes straight to the top tier, which answers 500 every time
    result = run_one(tmp_path, migrated_url, broker_url, "Write code to add two numbers.", sim=sim)
    assert result.status == "failed"
    assert "no tier is left above" in result.reason
    assert "HTTP 500" in result.reason
    queries, hops, requests = ledger_rows(migrated_url)
    (query,) = queries.values()
    assert_journey_consistent(query, hops[query.id], requests)
    call = hops[query.id][1]
    assert len(requests[call.id]) == 4 and all(r.http_status == 500 for r in requests[call.id])
