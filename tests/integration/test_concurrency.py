"""A tier's max_concurrency holds across all of its workers, and a slow tier does not hold up
routing, judging or the other tiers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from stack import running_stack, sim_config

from routeq import Client
from routeq.config import RoutingConfig, RuleConfig
from routeq.local import start_workers, stop_workers
from routeq.sim import SimModel

pytestmark = pytest.mark.integration


def test_max_concurrency_holds_across_two_worker_groups_of_a_tier(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a mid tier limited to 2 concurrent calls, and two worker groups of 4 processes on it
    slow = {"sim-medium": SimModel("sim-medium", quality=0.99, latency_ms=300, output_tokens=30)}
    with running_stack(
        tmp_path,
        migrated_url,
        broker_url,
        sim_config(**slow),
        tier_overrides={"mid": {"max_concurrency": 2}},
        routing=RoutingConfig(rules=[RuleConfig(name="all", tier="mid")]),
    ) as (stack, server):
        stack.start_worker("-Q", "route", "-Q", "judge", "-c", "2", name="control")
        stack.start_worker("--tier", "mid", "-c", "4", name="mid-a")
        stack.start_worker("--tier", "mid", "-c", "4", name="mid-b")
        with Client(stack.settings) as client:
            # When 16 queries for that tier arrive at once
            handles = client.submit_many([f"Explain idea {i} please." for i in range(16)])
            results = [handle.wait(timeout=120) for handle in handles]
    # Then all finish, and the model never saw more than 2 calls at a time (but did see 2)
    assert all(result.ok for result in results)
    assert server.max_in_flight["sim-medium"] == 2


def test_a_slow_tier_does_not_hold_up_the_others_on_the_local_stack(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given the local stack's worker groups, and a frontier tier that takes 4 s per call
    slow = {"sim-large": SimModel("sim-large", quality=0.99, latency_ms=4000, output_tokens=30)}
    rules = [
        RuleConfig(name="hard", tier="frontier", keywords=["prove"]),
        RuleConfig(name="rest", tier="mid"),
    ]
    with running_stack(
        tmp_path,
        migrated_url,
        broker_url,
        sim_config(**{**slow, "sim-medium": SimModel("sim-medium", 0.99, 5, 30)}),
        tier_overrides={"frontier": {"timeout_s": 8.0}},
        routing=RoutingConfig(rules=rules),
    ) as (stack, server):
        workers = start_workers(stack.settings, 2, tmp_path / "local.log")
        try:
            with Client(stack.settings) as client:
                # When the frontier's workers are all busy with slow calls
                hard = client.submit_many([f"Please prove lemma {i}." for i in range(6)])
                deadline = time.monotonic() + 60
                while server.in_flight.get("sim-large", 0) < 2:
                    assert time.monotonic() < deadline, "frontier calls never started"
                    time.sleep(0.05)
                easy = client.submit_many([f"What is {i} plus {i}?" for i in range(10)])
                easy_results = [handle.wait(timeout=60) for handle in easy]
                frontier_busy = server.in_flight.get("sim-large", 0)
                hard_results = [handle.wait(timeout=120) for handle in hard]
        finally:
            stop_workers(stack.settings, workers)
    # Then the easy queries are routed, answered and judged while the frontier is still busy
    assert all(result.ok and result.final_tier == "mid" for result in easy_results)
    assert frontier_busy >= 1, "the frontier finished first: the test proves nothing"
    assert all(result.ok for result in hard_results)
