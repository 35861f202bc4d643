"""Feedback through real workers: a thumbs-down on a cheap answer buys a re-run one tier up,
linked to the feedback, without touching the original answer; the report counts both apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from stack import running_stack, sim_qualities

from routeq import Client
from routeq.errors import UnknownQueryError
from routeq.ledger import Ledger
from routeq.ledger.feedback import FeedbackRefusedError
from routeq.ledger_outcomes import answer_score, outcome_record
from routeq.sim import SimConfig
from routeq.traffic_report import Period, read_report

pytestmark = pytest.mark.integration


def accepting() -> SimConfig:
    """A ladder whose cheap and mid answers the judge always accepts."""
    return sim_qualities(small=1.0, medium=1.0)


def test_a_thumbs_down_reruns_one_tier_up_once_and_leaves_the_answer_as_it_was(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given cheap and mid tiers whose answers the judge accepts
    with running_stack(tmp_path, migrated_url, broker_url, accepting()) as (stack, _):
        stack.start_worker("-c", "2")
        with Client(stack.settings) as client:
            first = client.submit("hello", user="ana").wait(timeout=60)
            assert first.ok and first.final_tier == "cheap"

            # When the user gives it a thumbs-down
            given = client.feedback(first.query_id, thumbs_down=True, comment="too vague")
            assert given.answered_on == "cheap" and given.rerun is not None
            rerun = given.rerun.wait(timeout=60)
            # and thumbs it down again, and another user's answer up
            again = client.feedback(first.query_id, thumbs_down=True)
            other = client.submit("hello there", user="bo").wait(timeout=60)
            up = client.feedback(other.query_id, thumbs_down=False)
            after = client.status(first.query_id)

            # Then feedback on what is not a finished answer is refused, changing nothing
            with pytest.raises(UnknownQueryError):
                client.feedback("00000000-0000-0000-0000-000000000000", thumbs_down=True)
            with pytest.raises(FeedbackRefusedError, match="rerun query"):
                client.feedback(rerun.query_id, thumbs_down=True)

    # the re-run answered one tier up, decided by the feedback, not the policy
    assert rerun.ok and rerun.final_tier == "mid"
    route = rerun.hops[0]
    assert (
        route.tier == "mid"
        and route.policy == "feedback-rerun"
        and "thumbs-down on cheap" in (route.reason or "")
    )
    # once: the second thumbs-down points at the same re-run; a thumbs-up buys none
    assert again.rerun is not None and again.rerun.query_id == rerun.query_id
    assert not again.rerun.created
    assert up.rerun is None
    # the original keeps its answer, tier and cost
    assert (after.answer, after.final_tier, after.total_cost) == (
        first.answer,
        "cheap",
        first.total_cost,
    )
    engine = sa.create_engine(migrated_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT query_id, thumbs_down, comment, tier, rerun_query_id FROM feedback")
        ).all()
        role, rerun_of = conn.execute(
            sa.text("SELECT role, rerun_of FROM queries WHERE id = :id"), {"id": rerun.query_id}
        ).one()
    assert role == "rerun" and rerun_of == first.query_id
    recorded = {(r.thumbs_down, r.comment, r.tier, r.rerun_query_id) for r in rows}
    assert recorded == {
        (True, "too vague", "cheap", rerun.query_id),
        (True, None, "cheap", rerun.query_id),
        (False, None, "cheap", None),
    }
    # and the report counts the rated queries, not the re-run, and its cost apart
    report = read_report(engine, "user", Period(), stack.settings.top_tier)
    by_user = {g.group: g for g in report.groups}
    assert report.total.queries == 2
    assert by_user["ana"].thumbs_down_rate == 1.0 and by_user["bo"].thumbs_down_rate == 0.0
    assert by_user["ana"].rerun_cost == rerun.total_cost > 0
    assert by_user["ana"].cost == first.total_cost
    # and the judge, which passed both answers, agreed with one rating of the two
    [cheap_judge] = [j for j in report.judges if j.tier == "cheap"]
    assert cheap_judge.judge == "sim-judge" and cheap_judge.answers == 2
    agreement = cheap_judge.feedback_agreement
    assert agreement is not None and (agreement.n, agreement.value) == (2, 0.5)
    # and the ratings are training labels that outrank the judge's pass
    labelled = {q.id: q for q in Ledger(engine).judged_queries()}
    rated_down, rerun_answer = labelled[first.query_id].answers
    [rated_up] = labelled[other.query_id].answers
    assert rated_down.passed and rated_down.rating == "down" and answer_score(rated_down) == 0.0
    assert rated_up.rating == "up" and answer_score(rated_up) == 1.0
    assert rerun.query_id not in labelled  # a re-run is not a user's query of its own
    # but its answer labels the original's prompt on the tier it ran on
    assert (rerun_answer.via, rerun_answer.tier, rerun_answer.response) == (
        "rerun",
        "mid",
        rerun.answer,
    )
    outcomes = outcome_record(labelled[first.query_id])["outcomes"]
    assert outcomes["cheap"]["score"] == 0.0 and outcomes["mid"]["response"] == rerun.answer
    engine.dispose()


def test_routeq_feedback_prints_the_rerun_and_refuses_what_is_not_a_finished_answer(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    with running_stack(tmp_path, migrated_url, broker_url, accepting()) as (stack, _):
        stack.start_worker("-c", "2")
        with Client(stack.settings) as client:
            answered = client.submit("hello").wait(timeout=60)

        def feedback(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "routeq", "feedback", *args],
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        # When a thumbs-down is given from the command line, waiting for the re-run
        down = feedback(str(answered.query_id), "--comment", "wrong", "--wait", "--json")
        # and for a query that does not exist, or an id that is not one
        unknown = feedback("00000000-0000-0000-0000-000000000000")
        malformed = feedback("not-an-id")

    # Then the re-run's result is printed; the bad ids exit 2 with the reason on stderr
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert result["final_tier"] == "mid" and result["status"] == "done"
    assert "re-running above cheap" in down.stderr
    assert unknown.returncode == 2 and "no query with id" in unknown.stderr
    assert malformed.returncode == 2 and malformed.stderr.strip()
