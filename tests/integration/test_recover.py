"""`routeq recover` after losing Redis: the ledger knows what was in flight; nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from stack import Stack, running_stack, sim_config

from routeq import Client

pytestmark = pytest.mark.integration


def recover(stack: Stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "routeq", "recover", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_queries_whose_messages_redis_lost_complete_after_recover(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    with (
        running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _),
        Client(stack.settings) as client,
    ):
        # Given queries submitted while no worker ran, one of them claimed by a worker
        # that died two hours ago (its hop left running, long past its lease)
        handles = client.submit_many([f"What is {n} times {n}?" for n in range(8)])
        stale = handles[0].query_id
        claim = client.ledger.claim(stale, 1, lease_s=600, max_deliveries=3)
        assert claim.state == "claimed"
        with client.ledger.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE hops SET started_at = now() - interval '2 hours', "
                    "lease_expires_at = now() - interval '2 hours' "
                    "WHERE query_id = :q AND seq = 1"
                ),
                {"q": stale},
            )
        # And Redis lost every message
        redis.Redis.from_url(broker_url).flushdb()
        stack.start_worker("-c", "2")
        time.sleep(1.0)
        assert {client.status(h.query_id).status for h in handles} <= {"queued", "running"}

        # When an operator runs `routeq recover`: by default only hops waiting over a minute
        # (here: none) and running hops past their lease (the stale one) are re-published
        assert "would re-publish 1 hops (1 route)" in recover(stack, "--dry-run")
        assert "would re-publish 8 hops (8 route)" in recover(
            stack, "--older-than", "0", "--dry-run"
        )
        assert "re-published 8 hops (8 route)" in recover(stack, "--older-than", "0")

        # Then every query completes, the stale one on its second delivery
        results = [handle.wait(timeout=60) for handle in handles]
        assert all(result.status == "done" for result in results)
        assert results[0].hops[0].attempts == 2
        # And a second run finds nothing left to do
        assert "re-published 0 hops," in recover(stack, "--older-than", "0")
