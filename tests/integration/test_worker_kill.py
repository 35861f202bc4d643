"""A worker killed with SIGKILL in the middle of model calls loses nothing and doubles nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from audit import assert_journey_consistent, ledger_rows
from stack import running_stack, sim_config

from routeq import Client
from routeq.config import WorkerConfig
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

# Short limits so a dead worker's messages come back in seconds: Redis redelivers unacked
# messages after the visibility timeout, and by then the hop's lease (one attempt) has run out.
# The reconciler runs too, as in production: a message the victim had taken off its queue but
# not yet recorded as unacked (kombu does that in two steps) is lost to Redis, and only the
# ledger still knows the hop needs it. The soft limit fits one delivery of the test ladder
# (4 attempts of 2 s), as the config check requires; no time is set aside for rate limits.
SHORT_LIMITS = WorkerConfig(
    task_soft_time_limit_s=10,
    task_time_limit_s=11,
    visibility_timeout_s=16,
    step_lease_s=1,
    lease_margin_s=0.5,
    reconcile_interval_s=5,
)


def running_calls(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM hops WHERE kind = 'call' AND status = 'running'")
        ).scalar_one()
    engine.dispose()
    return int(count)


def test_sigkill_mid_call_every_query_completes_once(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given slow model calls, so that a kill lands while calls are in flight
    slow = {
        name: SimModel(name, quality=q, latency_ms=400, output_tokens=40)
        for name, q in (("sim-small", 0.5), ("sim-medium", 0.8), ("sim-large", 0.97))
    }
    with running_stack(
        tmp_path,
        migrated_url,
        broker_url,
        sim_config(**slow),
        worker=SHORT_LIMITS,
        protection={"max_inline_wait_s": 0},
    ) as (stack, _):
        victim = stack.start_worker("--concurrency", "4", name="victim")
        with Client(stack.settings) as client:
            handles = client.submit_many([f"Explain topic number {i} briefly." for i in range(30)])
            deadline = time.monotonic() + 30
            while running_calls(migrated_url) < 3:
                assert time.monotonic() < deadline, "calls never started"
                time.sleep(0.02)

            # When the worker and its pool children are killed mid-call
            stack.kill_worker(victim)
            interrupted = running_calls(migrated_url)
            stack.start_worker("--concurrency", "4", name="survivor")
            stack.start_beat()
            results = [handle.wait(timeout=180) for handle in handles]

    # Then every query completes
    assert interrupted >= 3
    assert all(result.ok for result in results), [r.reason for r in results if not r.ok]
    queries, hops, requests = ledger_rows(migrated_url)
    retried = [h for journey in hops.values() for h in journey if h.attempts > 1]
    # the interrupted hops were delivered again and finished by the survivor
    assert len(retried) >= interrupted
    for query in queries.values():
        assert_journey_consistent(query, hops[query.id], requests)
        # and no call was recorded twice: one successful provider response per finished call
        for hop in hops[query.id]:
            if hop.kind == "call" and hop.status == "done":
                ok = [r for r in requests[hop.id] if r.outcome == "ok"]
                assert len(ok) == 1, f"{query.id} seq {hop.seq}: {len(ok)} answers recorded"
