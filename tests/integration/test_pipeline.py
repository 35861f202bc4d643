"""The whole pipeline through real worker processes on real Redis and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit import TIERS, assert_journey_consistent, ledger_rows
from stack import bad_tiers_sim, running_stack, sim_config

from routeq import Client
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

TOPICS = [
    "hello",
    "thanks a lot",
    "What is the boiling point of water at altitude?",
    "Summarise the plot of Hamlet in two sentences.",
    "Write Python code that merges two sorted lists.",
    "Why doesn't my loop terminate when the list is empty?",
    "Give a proof that there are infinitely many primes.",
    "Explain how HTTP caching headers interact with CDNs.",
    "How should I structure a weekly team meeting?",
    "List three risks of migrating a monolith to microservices.",
]


def workload(count: int) -> list[str]:
    return [
        f"{TOPICS[i % len(TOPICS)]} (case {i})" if i % 3 else TOPICS[i % len(TOPICS)] + f" {i}"
        for i in range(count)
    ]


def test_200_queries_escalate_exactly_where_the_judge_failed(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a ladder whose cheap and mid tiers answer badly often and fail transiently sometimes
    sim = bad_tiers_sim()
    with running_stack(tmp_path, migrated_url, broker_url, sim) as (stack, _):
        stack.start_worker("--concurrency", "4")
        # When 200 queries are submitted and awaited
        with Client(stack.settings) as client:
            handles = client.submit_many(workload(200))
            results = [handle.wait(timeout=240) for handle in handles]

    # Then every query finished, and the ledger tells a consistent story for each
    assert len(results) == 200
    assert all(result.status == "done" for result in results), [
        (r.query_id, r.reason) for r in results if not r.ok
    ]
    queries, hops, requests = ledger_rows(migrated_url)
    assert len(queries) == 200
    for query in queries.values():
        assert_journey_consistent(query, hops[query.id], requests)

    # And escalation really happened, on verdicts from both the heuristics and the LLM judge
    judge_hops = [h for journey in hops.values() for h in journey if h.kind == "judge"]
    failed = [h for h in judge_hops if h.passed is False]
    assert any(h.details["source"] == "heuristic" for h in failed)
    assert any(h.details["source"] == "llm" for h in failed)
    escalated = [q for q in queries.values() if sum(h.kind == "call" for h in hops[q.id]) > 1]
    assert len(escalated) >= 20
    # every failed verdict below the top tier was followed by exactly one call one tier up
    for journey in hops.values():
        for index, hop in enumerate(journey):
            if hop.kind == "judge" and hop.passed is False and hop.tier != TIERS[-1]:
                following = journey[index + 1]
                assert following.kind == "call"
                assert following.tier == TIERS[TIERS.index(hop.tier) + 1]
    # and transient faults were retried and recorded, not hidden
    all_requests = [r for rows in requests.values() for r in rows]
    assert any(r.outcome == "error" and r.http_status == 500 for r in all_requests)
    assert any(r.outcome == "error" and r.http_status == 429 for r in all_requests)


def test_provider_returning_garbage_is_recorded_and_escalated(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a cheap tier whose provider always answers 200 with a non-JSON body
    sim = sim_config(
        **{"sim-small": SimModel("sim-small", quality=1.0, latency_ms=1, fault_malformed=1.0)}
    )
    with running_stack(tmp_path, migrated_url, broker_url, sim) as (stack, _):
        stack.start_worker("--concurrency", "2")
        with Client(stack.settings) as client:
            result = client.submit("hi there").wait(timeout=60)  # chit-chat → cheap

    # Then the garbage is an error on every attempt, and the query moved up and finished
    assert result.ok and result.tier_path[0] == "cheap" and result.tier_path[1] == "mid"
    queries, hops, requests = ledger_rows(migrated_url)
    cheap_call = hops[result.query_id][1]
    assert cheap_call.status == "failed" and "not JSON" in cheap_call.error
    tries = requests[cheap_call.id]
    assert len(tries) == 4 and all(r.outcome == "error" for r in tries)  # 1 + max_retries
    assert_journey_consistent(queries[result.query_id], hops[result.query_id], requests)
