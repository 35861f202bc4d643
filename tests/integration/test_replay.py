"""``routeq replay`` on a ledger the real steps wrote (in process, simulated models): replaying
the policy that routed the traffic gives back exactly what happened, and a candidate's figures
are those of the recorded answers it would have used, with the ones the ledger lacks flagged."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stack import FAST_RETRY, judge, ladder, run_routeq, sim_config

from conftest import emptied_ledger
from routeq.config import Settings
from routeq.pipeline import InProcessPipeline
from routeq.replay import (
    PLACEHOLDER,
    candidate_settings,
    read_past_queries,
    replay_past,
    scratch_database,
)
from routeq.sim import SimServer

pytestmark = pytest.mark.integration

QUESTIONS = [
    "hi there",  # chit-chat: the starter rules send it to the cheapest tier
    "What is the capital of France, and why did it become the capital?",
    "Why doesn't my recursive function debug cleanly?",  # a keyword: straight to the top
    "Explain how HTTP caching headers interact with CDNs.",
]


@pytest.fixture(scope="module")
def recorded(migrated_url: str) -> Any:
    """40 questions routed by the starter rules (default tier mid), with escalations."""
    ledger = emptied_ledger(migrated_url)
    with SimServer(sim_config()) as server:
        settings = Settings(tiers=ladder(server.url), judge=judge(server.url), retry=FAST_RETRY)
        with InProcessPipeline(settings, ledger) as runner:
            runner.submit([f"{QUESTIONS[i % 4]} (case {i})" for i in range(40)])
            assert runner.run().errors == []
        past = read_past_queries(ledger.engine, None, None, None)
        yield settings, ledger.engine, past
    ledger.engine.dispose()


def test_replaying_the_policy_that_routed_the_traffic_gives_back_what_happened(
    recorded: Any, migrated_url: str
) -> None:
    settings, _, past = recorded
    assert len(past) == 40 and any(q.escalations for q in past)
    candidate = candidate_settings(settings, "rules", {}, None)
    with scratch_database(migrated_url) as scratch:
        result = replay_past(candidate, scratch, past)
    assert result.flagged_queries == 0 and result.unanswerable_requests == 0
    assert result.replayed == result.actual


def test_a_candidate_is_priced_from_recorded_answers_and_flags_the_ones_it_lacks(
    recorded: Any, migrated_url: str
) -> None:
    settings, _, past = recorded
    # When every query the rules do not place is sent to the top tier instead of mid
    candidate = candidate_settings(settings, "rules", {}, "frontier")
    with scratch_database(migrated_url) as scratch:
        result = replay_past(candidate, scratch, past)
        engine = sa.create_engine(scratch)
        with engine.connect() as conn:
            replayed = {
                row.key: row
                for row in conn.execute(
                    sa.text(
                        "SELECT q.idempotency_key AS key, q.final_answer, q.final_tier, "
                        "q.total_cost FROM queries q"
                    )
                )
            }
        engine.dispose()
    # Then the chit-chat still starts cheap (and may escalate), everything else calls the top
    top = [q for q in past if "hi there" not in q.text]
    assert result.replayed.routed == {"cheap": 0.25, "frontier": 0.75}
    assert result.replayed.top_tier_share >= len(top) / 40 > result.actual.top_tier_share
    # queries that really reached the top tier get its recorded answer and cost nothing new
    for query in top:
        again = replayed[f"replay:{query.id}"]
        assert again.final_tier == "frontier"
        if "frontier" in query.calls:
            assert again.final_answer == query.calls["frontier"].output
        else:
            assert again.final_answer == PLACEHOLDER
    # and the ones that never did are flagged, one call each
    lacking = [q for q in top if "frontier" not in q.calls]
    assert lacking and result.flagged_queries == len(lacking) == result.flagged_calls
    # the top tier's answers pass (0.97): no escalation from it
    assert result.replayed.escalations < result.actual.escalations
    assert result.replayed.cost == sum(
        (Decimal(r.total_cost) for r in replayed.values()), Decimal(0)
    )


def run_replay(settings: Settings, folder: Path, url: str, *args: str) -> Any:
    return run_routeq(settings, folder, url, "replay", *args)


def test_routeq_replay_prints_both_sides_and_refuses_a_bad_candidate(
    recorded: Any, migrated_url: str, tmp_path: Path
) -> None:
    settings, _, past = recorded
    shown = run_replay(
        settings, tmp_path, migrated_url, "--policy", "rules", "--default-tier", "frontier",
        "--json",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["actual"]["queries"] == document["replayed"]["queries"] == len(past)
    assert document["flagged_queries"] > 0 and "their cost is estimated" in shown.stderr
    table = run_replay(settings, tmp_path, migrated_url, "--policy", "rules", "--limit", "5")
    assert table.returncode == 0, table.stderr
    assert "what happened" in table.stdout and "replay of 5 queries" in table.stdout
    # a candidate that does not exist, or an option it does not have: exit 2, saying why
    unknown = run_replay(settings, tmp_path, migrated_url, "--policy", "no-such-policy")
    assert unknown.returncode == 2 and "no-such-policy" in unknown.stderr
    bad = run_replay(settings, tmp_path, migrated_url, "--policy", "rules", "--set", "x=1")
    assert bad.returncode == 2 and "x" in bad.stderr
