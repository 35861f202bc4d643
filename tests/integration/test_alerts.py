"""`routeq report --check` on ledgers that real workers wrote: it exits 1 and names the limit
when the cheap tier escalates too often or its accepted answers lose to their shadows, and 0
when traffic stays within the limits."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stack import running_stack, sim_qualities

from routeq import Client

pytestmark = pytest.mark.integration


def check(stack: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "routeq", "report", "--check"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answer_all(stack: Any, count: int) -> None:
    with Client(stack.settings) as client:
        handles = client.submit_many([f"hello {i}" for i in range(count)])
        assert all(h.wait(timeout=120).ok for h in handles)


def test_a_cheap_tier_that_escalates_most_queries_fails_the_check(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a cheap tier whose answers the judge fails, and a mid tier it accepts
    sim = sim_qualities(small=0.1, medium=1.0)
    with running_stack(tmp_path, migrated_url, broker_url, sim) as (stack, _):
        stack.start_worker("-c", "2")
        # When 20 chit-chat queries (routed cheap) are answered
        answer_all(stack, 20)
        checked = check(stack)
    # Then the check exits 1 and says which limit, and why it matters
    assert checked.returncode == 1, checked.stderr
    assert re.search(r"escalation rate (9\d|100)\.\d% is above 30\.0%", checked.stderr)
    assert "too weak" in checked.stderr


def test_accepted_answers_that_lose_to_their_shadows_fail_the_check(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a lenient judge (pass at 2 of 10) that accepts the cheap tier's poor answers
    # (scored 2-5), and a mid tier whose answers are good (7-10)
    sim = sim_qualities(small=0.0, medium=1.0)
    sampling = running_stack(
        tmp_path,
        migrated_url,
        broker_url,
        sim,
        judge_overrides={"pass_threshold": 2},
        shadow={"enabled": True, "share": 1.0, "tier": "next"},
        alerts={"min_shadows": 5},
    )
    with sampling as (stack, _):
        stack.start_worker("-c", "2")
        # When 6 queries are answered cheap, and every one is shadowed on mid
        answer_all(stack, 6)
        engine = sa.create_engine(migrated_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM queries WHERE role = 'shadow' AND status = 'done'"
                    )
                ).scalar_one()
            if done == 6:
                break
            time.sleep(0.2)
        engine.dispose()
        checked = check(stack)
    # Then the check names the shadow quality drop (about 0.4 on the 0-1 scale) and exits 1;
    # six queries are too few for the rates, so nothing else is judged
    assert checked.returncode == 1, checked.stderr
    drop = re.search(
        r"shadow answers from a stronger tier scored (\d+\.\d)% better", checked.stderr
    )
    assert drop is not None and float(drop.group(1)) > 20, checked.stderr
    assert "1 alert limit(s) crossed" in checked.stderr


def test_traffic_within_the_limits_passes_the_check(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    sim = sim_qualities(small=1.0)
    with running_stack(tmp_path, migrated_url, broker_url, sim) as (stack, _):
        stack.start_worker("-c", "2")
        answer_all(stack, 20)
        checked = check(stack)
    assert checked.returncode == 0, checked.stderr
    assert "no limit crossed (20 queries)" in checked.stderr
