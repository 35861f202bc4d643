"""Issue 10's two routing aids through the real steps on the real ledger (the in-process
pipeline; Postgres only): the few-shot LLM classifier policy, whose call is recorded on the
route hop, and ``[routing.first_queries]``, which reads the user's history from the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from audit import assert_journey_consistent, ledger_rows
from stack import sim_config
from test_inprocess_pipeline import pipeline, run_one

from routeq.ledger import Ledger
from routeq.records import NewQuery, QueryRole
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

# The simulated classifier (the cheap tier's model) replies a chosen label to a query holding
# its cue, after the simulator's marker; any other query gets an ordinary simulated answer.
CLASSIFIER = SimModel(
    "sim-small",
    quality=1.0,
    latency_ms=0,
    output_tokens=40,
    replies=(("zq-maths", "math"), ("zq-chat", "Chit-chat.")),
)
CLASSIFIER_POLICY: dict[str, Any] = {
    "name": "llm-classifier",
    "classifier_tier": "cheap",
    "labels": {"math": "frontier", "chit-chat": "cheap", "search": "mid"},
    "examples": [{"text": "hi, how are you?", "label": "chit-chat"}],
}


def test_the_classifiers_call_is_on_the_route_hop_and_the_query_lands_on_the_labels_tier(
    ledger: Ledger, migrated_url: str
) -> None:
    sim = sim_config(**{"sim-small": CLASSIFIER})
    with pipeline(ledger, sim, routing={"policy": CLASSIFIER_POLICY}) as (runner, _):
        maths = run_one(runner, "zq-maths: integrate x squared from 0 to 3")
        chat = run_one(runner, "zq-chat hey there")

    route = maths.hops[0]
    assert route.tier == "frontier" and route.policy == "llm-classifier"
    assert route.details == {"label": "math"}
    assert route.reason.startswith("classified as 'math' by cheap")
    assert route.policy_version and len(route.policy_version) == 12
    assert route.input_tokens and route.output_tokens and route.cost > Decimal(0)
    assert maths.hops[1].kind.value == "call" and maths.hops[1].tier == "frontier"
    assert chat.hops[0].tier == "cheap" and chat.hops[0].details == {"label": "chit-chat"}

    queries, hops, requests = ledger_rows(migrated_url)
    route_row = hops[maths.id][0]
    [request] = requests[route_row.id]
    assert request.model == "sim-small" and request.outcome == "ok"
    assert request.input_tokens == route.input_tokens and request.output_tokens > 0
    assert request.cost == route.cost
    assert maths.total_cost == sum(h.cost for h in maths.hops)
    assert_journey_consistent(queries[maths.id], hops[maths.id], requests)


def test_a_reply_that_is_no_label_routes_to_the_fallback_tier_saying_so(ledger: Ledger) -> None:
    sim = sim_config(**{"sim-small": CLASSIFIER})
    policy = {**CLASSIFIER_POLICY, "fallback_tier": "mid"}
    with pipeline(ledger, sim, routing={"policy": policy}) as (runner, _):
        view = run_one(runner, "What is the tallest mountain in Europe?")

    route = view.hops[0]
    assert route.tier == "mid" and route.policy == "llm-classifier"
    assert route.details == {"label": None, "fallback": True}
    assert "is not a label: fallback tier" in (route.reason or "")
    assert route.cost > Decimal(0)  # the classifier was asked, and that is paid for


def test_a_new_users_first_queries_go_to_the_top_tier_then_the_policy_decides(
    ledger: Ledger,
) -> None:
    routing = {"first_queries": {"count": 2}}
    with pipeline(ledger, routing=routing) as (runner, _):
        journeys = [run_one(runner, NewQuery("hello", 2, user="new")) for _ in range(3)]
        anonymous = run_one(runner, NewQuery("hello", 2))
        other = run_one(runner, NewQuery("hello", 2, user="someone-else"))

    routes = [view.hops[0] for view in journeys]
    for earlier, route in enumerate(routes[:2]):
        assert route.tier == "frontier" and route.policy == "first-queries"
        assert route.reason == f"first 2 queries of a new user ({earlier} earlier)"
        assert route.details == {"first_queries": earlier}
    # the third is an old hand's: "hello" is chit-chat to the starter rules
    assert routes[2].tier == "cheap" and routes[2].policy == "rules"
    assert routes[2].details == {"rule": "chit-chat"}
    assert anonymous.hops[0].tier == "cheap" and anonymous.hops[0].policy == "rules"
    assert other.hops[0].policy == "first-queries"  # a user of their own, with no history


def test_a_first_query_costs_no_classifier_call_and_a_later_one_is_classified(
    ledger: Ledger, migrated_url: str
) -> None:
    sim = sim_config(**{"sim-small": CLASSIFIER})
    routing = {"policy": CLASSIFIER_POLICY, "first_queries": {"count": 1, "tier": "mid"}}
    with pipeline(ledger, sim, routing=routing) as (runner, _):
        first = run_one(runner, NewQuery("zq-chat hi", 4, user="new"))
        second = run_one(runner, NewQuery("zq-chat hi again", 5, user="new"))

    assert first.hops[0].tier == "mid" and first.hops[0].policy == "first-queries"
    assert first.hops[0].cost == 0
    assert second.hops[0].tier == "cheap" and second.hops[0].details == {"label": "chit-chat"}
    _, hops, requests = ledger_rows(migrated_url)
    assert requests.get(hops[first.id][0].id, []) == []
    assert len(requests[hops[second.id][0].id]) == 1


def test_earlier_queries_are_counted_per_user_answers_only_in_submit_order_and_capped(
    ledger: Ledger,
) -> None:
    # Three of ann's queries in one transaction share created_at: the id orders them.
    together = ledger.submit([NewQuery(f"q{i}", 1, user="ann") for i in range(3)])
    later = ledger.submit([NewQuery("later", 1, user="ann")])
    ledger.submit([NewQuery("bob's", 1, user="bob"), NewQuery("anonymous", 1)])
    document = ledger.submit([NewQuery("a document", 2, user="ann", role=QueryRole.DOCUMENT)])
    last = ledger.submit([NewQuery("last", 1, user="ann")])

    def count(entry: Any, at_most: int = 10) -> int:
        return ledger.count_earlier_queries("ann", entry.query_id, at_most=at_most)

    assert sorted(count(entry) for entry in together) == [0, 1, 2]
    assert count(later[0]) == 3
    assert count(document[0]) == 4  # the document itself is not an answer query...
    assert count(last[0]) == 4  # ...and is not counted
    assert count(last[0], at_most=2) == 2
    assert ledger.count_earlier_queries("bob", last[0].query_id, at_most=10) == 1
    assert ledger.count_earlier_queries("nobody", last[0].query_id, at_most=10) == 0
