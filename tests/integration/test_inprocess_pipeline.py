"""The real steps on the real ledger, driven in this process (``routeq.pipeline``): the same
scenarios as the worker-process tests, in seconds, plus every branch of every step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from audit import TIERS, assert_journey_consistent, ledger_rows
from stack import FAST_RETRY, bad_tiers_sim, judge, ladder, sim_config
from test_pipeline import workload

from routeq.config import Settings
from routeq.ledger import Ledger
from routeq.pipeline import InProcessPipeline
from routeq.records import NewQuery, QueryStatus
from routeq.sim import SimConfig, SimModel, SimServer

pytestmark = pytest.mark.integration


@contextmanager
def pipeline(
    ledger: Ledger,
    sim: SimConfig | None = None,
    *,
    tier_overrides: dict[str, dict[str, Any]] | None = None,
    **settings_extra: Any,
) -> Iterator[tuple[InProcessPipeline, Settings]]:
    options = settings_extra.pop("pipeline", {})
    with SimServer(sim or sim_config()) as server:
        settings = Settings(
            tiers=ladder(server.url, **(tier_overrides or {})),
            judge=settings_extra.pop("judge", judge(server.url)),
            retry=settings_extra.pop("retry", FAST_RETRY),
            **settings_extra,
        )
        with InProcessPipeline(settings, ledger, **options) as runner:
            yield runner, settings


def test_200_queries_through_bad_tiers_and_faults_pass_the_ledger_audit(
    ledger: Ledger, migrated_url: str
) -> None:
    # Given the worker-process test's ladder: cheap and mid answer badly often and fail sometimes
    sim = bad_tiers_sim(latency_ms=0)
    with pipeline(ledger, sim) as (runner, _):
        ids = runner.submit(workload(200))
        report = runner.run()

    # Then every query finished, with the same ledger audit as through worker processes
    assert report.errors == []
    queries, hops, requests = ledger_rows(migrated_url)
    assert len(ids) == len(queries) == 200
    assert all(q.status == "done" for q in queries.values()), [
        q.final_reason for q in queries.values() if q.status != "done"
    ]
    for query in queries.values():
        assert_journey_consistent(query, hops[query.id], requests)
    escalated = [q for q in queries.values() if sum(h.kind == "call" for h in hops[q.id]) > 1]
    assert len(escalated) >= 20
    judged = [h for journey in hops.values() for h in journey if h.kind == "judge"]
    assert {"heuristic", "llm"} <= {h.details["source"] for h in judged if h.passed is False}
    all_requests = [r for rows in requests.values() for r in rows]
    assert any(r.outcome == "error" and r.http_status == 500 for r in all_requests)
    assert any(r.outcome == "error" and r.http_status == 429 for r in all_requests)
    # the route hops say which policy decided, at which version
    routes = [journey[0] for journey in hops.values()]
    assert {r.policy for r in routes} == {"rules"} and all(r.policy_version for r in routes)


# -- every branch of the steps --------------------------------------------------------------------


def run_one(runner: InProcessPipeline, item: str | NewQuery) -> Any:
    [query_id] = runner.submit([item])
    runner.run()
    return runner.runtime.ledger.view(query_id)


def test_a_failed_verdict_escalates_one_tier_and_a_pass_accepts(ledger: Ledger) -> None:
    sim = sim_config(**{"sim-small": SimModel("sim-small", quality=0.0, latency_ms=0)})
    with pipeline(ledger, sim) as (runner, _):
        view = run_one(runner, "hello")  # chit-chat: routed to cheap, which always fails

    assert view.status is QueryStatus.DONE
    kinds = [(h.kind.value, h.tier) for h in view.hops]
    assert kinds[:4] == [("route", "cheap"), ("call", "cheap"), ("judge", "cheap"), ("call", "mid")]
    assert view.hops[2].passed is False and view.final_tier in ("mid", "frontier")
    assert "judge passed" in (view.final_reason or "")


def test_the_top_tier_answer_is_accepted_even_when_the_judge_fails_it(ledger: Ledger) -> None:
    sim = sim_config(**{"sim-large": SimModel("sim-large", quality=0.0, latency_ms=0)})
    with pipeline(ledger, sim) as (runner, _):
        view = run_one(runner, "Write Python code that merges two sorted lists.")  # → frontier

    assert [h.kind.value for h in view.hops] == ["route", "call", "judge"]
    assert view.hops[2].passed is False
    assert view.status is QueryStatus.DONE and view.final_tier == "frontier"
    assert "top tier answer accepted although the judge failed it" in (view.final_reason or "")


@pytest.mark.parametrize(
    ("mode", "accepted"), [("open", True), ("closed", False)], ids=["fail-open", "fail-closed"]
)
def test_a_judge_that_cannot_grade_settles_by_the_tier_fail_mode(
    ledger: Ledger, mode: str, accepted: bool
) -> None:
    sim = sim_config(
        **{
            "sim-small": SimModel("sim-small", quality=1.0, latency_ms=0),
            "sim-judge": SimModel("sim-judge", 1.0, judge=True, latency_ms=0, fault_malformed=1.0),
        }
    )
    overrides = {"cheap": {"judge_fail_mode": mode}}
    with pipeline(ledger, sim, tier_overrides=overrides) as (runner, _):
        view = run_one(runner, "hello")

    judged = view.hops[2]
    assert judged.kind.value == "judge" and judged.details["source"] == "judge-error"
    assert judged.error  # the judge's failure is on its hop
    if accepted:
        assert view.final_tier == "cheap" and [h.kind.value for h in view.hops][-1] == "judge"
        assert (view.final_reason or "").startswith("accepted unjudged on cheap (judge failed")
        assert "judge passed" not in (view.final_reason or "")
    else:
        assert view.hops[3].kind.value == "call" and view.hops[3].tier == "mid"
        assert "fail closed" in (view.hops[3].reason or "")


def test_a_hop_past_its_delivery_cap_moves_the_query_on(ledger: Ledger) -> None:
    with pipeline(ledger) as (runner, settings):
        [query_id] = runner.submit(["hello"])
        route = runner.queue.pop()
        cap = settings.retry.max_deliveries
        for _ in range(cap):  # every delivery claims the route hop and dies before finishing
            claim = ledger.claim(query_id, 1, lease_s=0.001, max_deliveries=cap)
            assert claim.hop is not None
        runner.queue.publish(route)
        report = runner.run()

    view = ledger.view(query_id)
    assert report.errors == []
    assert view.hops[0].status.value == "failed" and "gave up after" in (view.hops[0].error or "")
    assert view.status is QueryStatus.FAILED and "gave up after 3 deliveries" in view.final_reason


def test_a_call_failing_on_the_top_tier_falls_back_to_the_earlier_answer(ledger: Ledger) -> None:
    sim = sim_config(
        **{
            "sim-small": SimModel("sim-small", quality=0.0, latency_ms=0),
            "sim-medium": SimModel("sim-medium", quality=0.0, latency_ms=0),
            "sim-large": SimModel("sim-large", 1.0, latency_ms=0, fault_500=1.0),
        }
    )
    with pipeline(ledger, sim) as (runner, _):
        view = run_one(runner, "hello")

    assert view.hops[-1].kind.value == "call" and view.hops[-1].status.value == "failed"
    assert view.status is QueryStatus.DONE and view.final_tier == "mid"
    assert "accepted the earlier answer" in (view.final_reason or "")


def test_a_long_document_is_split_summarised_and_combined(ledger: Ledger) -> None:
    from routeq.records import QueryRole
    from routeq.summary_spec import SummarySpec, SummaryTask
    from routeq.tokens import count_tokens

    sentences = " ".join(
        f"Section {i} explains how the harbour crane number {i} moves containers safely."
        for i in range(400)
    )
    task = SummaryTask(role="document", spec=SummarySpec()).model_dump(mode="json")
    document = NewQuery(sentences, count_tokens(sentences), task=task, role=QueryRole.DOCUMENT)
    with pipeline(ledger, summarize={"max_chunk_tokens": 1500}) as (runner, _):
        view = run_one(runner, document)
        children = ledger.children(view.id)

    assert {c.role for c in children} >= {QueryRole.PART, QueryRole.COMBINE}
    assert view.hops[1].kind.value == "combine"
    assert view.status is QueryStatus.DONE, view.final_reason
    assert "combined from" in (view.final_reason or "")


def test_chat_messages_and_parameters_reach_the_model_and_the_ledger(
    ledger: Ledger, migrated_url: str
) -> None:
    turns = [
        {"role": "system", "content": "You answer in French."},
        {"role": "user", "content": "What is the capital of Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "And of Spain?"},
    ]
    query = NewQuery(
        "And of Spain?", 30, messages=turns, params={"temperature": 0.2, "max_tokens": 50}
    )
    with pipeline(ledger) as (runner, _):
        view = run_one(runner, query)

    assert view.status is QueryStatus.DONE
    stored = ledger.query_input(view.id)
    assert stored.messages == turns and stored.params == {"temperature": 0.2, "max_tokens": 50}
    call = next(h for h in view.hops if h.kind.value == "call")
    assert call.output_tokens is not None and call.output_tokens <= 50
    _, _, requests = ledger_rows(migrated_url)
    assert all(r.cost >= Decimal(0) for rows in requests.values() for r in rows)


def test_a_context_length_error_from_the_provider_moves_the_query_up_not_out(
    ledger: Ledger, migrated_url: str
) -> None:
    # Given a cheap model whose real window is far smaller than the tier's configured one (its
    # tokenizer, or its server, disagrees with routeq's count)
    sim = sim_config(**{"sim-small": SimModel("sim-small", 1.0, latency_ms=0, context_window=200)})
    text = "Describe the water cycle as it works in a temperate forest. " * 10
    with pipeline(ledger, sim, routing={"default_tier": "cheap"}) as (runner, _):
        view = run_one(runner, text)

    # Then the cheap call fails once, without retries, and the next tier answers
    cheap, mid = (h for h in view.hops if h.kind.value == "call")
    assert cheap.tier == "cheap" and cheap.status.value == "failed"
    assert "ContextLengthExceededError" in (cheap.error or "")
    assert mid.tier == "mid" and view.status is QueryStatus.DONE
    _, hops, requests = ledger_rows(migrated_url)
    cheap_row = next(h for h in hops[view.id] if h.seq == cheap.seq)
    assert [r.http_status for r in requests[cheap_row.id]] == [400]


def test_a_document_split_for_small_windows_routes_every_part(ledger: Ledger) -> None:
    # Given a ladder of 2,048-token windows, where the token margin leaves ~1,450 of prompt
    from routeq.records import QueryRole
    from routeq.summary_spec import SummarySpec, SummaryTask
    from routeq.tokens import count_tokens

    small = {"context_window": 2048, "max_output_tokens": 300}
    overrides = {name: small for name in TIERS}
    text = " ".join(
        f"Clause {i} says the tenant must report any leak in room {i} within two days."
        for i in range(300)
    )
    task = SummaryTask(role="document", spec=SummarySpec()).model_dump(mode="json")
    document = NewQuery(text, count_tokens(text), task=task, role=QueryRole.DOCUMENT)
    with pipeline(ledger, tier_overrides=overrides) as (runner, _):
        view = run_one(runner, document)
        parts = [c for c in ledger.children(view.id) if c.role is QueryRole.PART]

    # Then every part fitted a tier (none failed for its size) and the document was summarised
    assert len(parts) >= 3
    assert all("does not fit" not in (part.reason or "") for part in parts)
    assert view.status is QueryStatus.DONE, view.final_reason


def test_a_top_tier_that_fails_closed_records_its_answer_as_accepted_unjudged(
    ledger: Ledger, migrated_url: str
) -> None:
    import sqlalchemy as sa

    sim = sim_config(
        **{"sim-judge": SimModel("sim-judge", 1.0, judge=True, latency_ms=0, fault_malformed=1.0)}
    )
    overrides = {"frontier": {"judge_fail_mode": "closed"}}
    with pipeline(ledger, sim, tier_overrides=overrides) as (runner, _):
        view = run_one(runner, "Write Python code that merges two sorted lists.")  # → frontier

    judged = view.hops[-1]
    assert judged.kind.value == "judge" and judged.tier == "frontier"
    assert judged.details == {"source": "judge-error", "judge_outcome": "accepted_unjudged"}
    assert "fail closed: answer accepted unjudged" in (judged.reason or "")
    assert view.final_tier == "frontier"
    assert (view.final_reason or "").startswith("accepted unjudged on frontier")
    engine = sa.create_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT metrics.fold()"))
        counted = (
            conn.execute(
                sa.text(
                    "SELECT labels FROM metrics.totals WHERE name = 'judge_errors' AND value > 0"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert counted == [["frontier", "accepted_unjudged"]]


def test_a_calls_slot_goes_back_after_the_judge_hop_is_published(ledger: Ledger) -> None:
    # Given a pipeline whose queue, tier slots and guard write down what happens, in order
    events: list[str] = []
    with pipeline(ledger) as (runner, _):
        rt = runner.runtime
        publish, release, report = runner.queue.publish, rt.slots.release, rt.guard.report

        def publishing(hop: Any, **options: Any) -> None:
            events.append(f"publish {hop.kind.value}")
            publish(hop, **options)

        def releasing(tier: str, holder: str) -> bool:
            events.append("release slot")
            return release(tier, holder)

        def reporting(endpoint: Any, outcome: Any, retry_after_s: float | None = None) -> None:
            events.append(f"report {outcome}")
            report(endpoint, outcome, retry_after_s)

        runner.queue.publish = publishing  # type: ignore[method-assign]
        rt.slots.release = releasing  # type: ignore[method-assign]
        rt.guard.report = reporting  # type: ignore[method-assign]
        # When a query is answered
        view = run_one(runner, "hello")
    # Then the guard heard of each answer at once, and each call's slot went back only once its
    # judge hop was on its queue: the judge did not wait for it
    assert view.status is QueryStatus.DONE
    releases = [at for at, event in enumerate(events) if event == "release slot"]
    assert releases and len(releases) == events.count("publish judge")
    for at in releases:
        assert events[at - 2 : at] == ["report ok", "publish judge"], events
