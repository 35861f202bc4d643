"""Ledger audits shared by the integration tests: what must hold for every finished query."""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

TIERS = ["cheap", "mid", "frontier"]


def ledger_rows(
    database_url: str,
) -> tuple[dict[Any, Any], dict[Any, list[Any]], dict[int, list[Any]]]:
    """(queries by id, hops by query id in seq order, provider requests by hop id)."""
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        queries = {row.id: row for row in conn.execute(sa.text("SELECT * FROM queries"))}
        hops: dict[Any, list[Any]] = defaultdict(list)
        for row in conn.execute(sa.text("SELECT * FROM hops ORDER BY query_id, seq")):
            hops[row.query_id].append(row)
        requests: dict[int, list[Any]] = defaultdict(list)
        for row in conn.execute(sa.text("SELECT * FROM provider_requests ORDER BY id")):
            requests[row.hop_id].append(row)
    engine.dispose()
    return queries, hops, requests


def assert_journey_consistent(query: Any, hops: list[Any], requests: dict[int, list[Any]]) -> None:
    """One query's ledger tells one consistent story.

    - seq runs 1..n with no gaps, starting with the route hop;
    - after a passing verdict nothing follows and the answer is that call's;
    - after a failing verdict below the top, the next hop is a call one tier up (escalation),
      and a call hop after the first exists only because a verdict or a call failed;
    - each tier is called at most once (no call recorded twice);
    - costs add up: requests → hop, hops → query.
    """
    qid = query.id
    assert [h.seq for h in hops] == list(range(1, len(hops) + 1)), qid
    assert hops[0].kind == "route" and hops[0].status == "done", qid
    assert all(h.status in ("done", "failed") for h in hops), (qid, [h.status for h in hops])
    calls = [h for h in hops if h.kind == "call"]
    assert len({c.tier for c in calls}) == len(calls), f"{qid}: a tier was called twice"
    for previous, hop in itertools.pairwise(hops):
        if hop.kind == "call" and previous.kind != "route":
            judged_fail = previous.kind == "judge" and previous.passed is False
            call_failed = previous.kind == "call" and previous.status == "failed"
            assert judged_fail or call_failed, f"{qid}: call {hop.seq} without a failed verdict"
            assert TIERS.index(hop.tier) > TIERS.index(previous.tier), qid
        if hop.kind == "judge":
            assert previous.kind == "call" and previous.status == "done", qid
    last = hops[-1]
    # A query whose texts were erased (privacy none, retention) has no reason left to read.
    erased = getattr(query, "texts_erased_at", None) is not None
    if query.status == "done" and erased:
        assert any(h.kind == "call" and h.status == "done" for h in hops), qid
    elif query.status == "done":
        if last.kind == "judge":
            answered = hops[-2]
            if last.passed and last.details.get("source") == "judge-error":
                assert "accepted unjudged" in query.final_reason, qid  # the judge failed open
            elif last.passed:
                assert "judge passed" in query.final_reason, qid
            else:
                assert last.tier == TIERS[-1], f"{qid}: failed verdict below top not escalated"
                assert (
                    "top tier answer accepted" in query.final_reason
                    or "accepted unjudged on frontier" in query.final_reason
                ), qid
        elif last.kind == "call" and last.status == "failed":
            # the top tier failed: the best earlier answer was accepted
            answered = next(h for h in reversed(hops) if h.kind == "call" and h.status == "done")
            assert "accepted the earlier answer" in query.final_reason, qid
        else:
            answered = last
        assert answered.kind == "call" and answered.status == "done", qid
        assert query.final_tier == answered.tier and query.final_answer == answered.output, qid
    else:
        assert query.status == "failed" and query.final_reason, qid
    for hop in hops:
        spent = sum((r.cost for r in requests.get(hop.id, [])), Decimal(0))
        assert hop.cost == spent, f"{qid} hop {hop.seq}: cost {hop.cost} != requests {spent}"
    assert query.total_cost == sum((h.cost for h in hops), Decimal(0)), qid
