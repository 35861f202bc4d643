"""Extension points, exercised from outside routeq: a policy registered by a plugin module,
features that call a model, escalation policies and hooks, all through the real steps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from stack import sim_config
from test_inprocess_pipeline import pipeline, run_one

from routeq.config import load_settings
from routeq.errors import ConfigError
from routeq.hooks import CallContext, CallGate, ClosedQuery, Deny, Hook, MoveTo, VerdictContext
from routeq.ledger import Ledger
from routeq.records import QueryStatus
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

PLUGIN = {"plugins": ["sample_plugin"]}


def test_a_plugin_policy_routes_and_its_name_version_and_details_are_on_the_route_hop(
    ledger: Ledger,
) -> None:
    routing = {**PLUGIN, "policy": {"name": "length-cutoff", "max_short_chars": 10}}
    with pipeline(ledger, routing=routing) as (runner, _):
        short = run_one(runner, "hi there")
        long = run_one(runner, "Tell me about the history of the printing press in Europe.")

    assert short.hops[0].tier == "cheap" and long.hops[0].tier == "frontier"
    route = long.hops[0]
    assert (route.policy, route.policy_version) == ("length-cutoff", "v7-test")
    assert route.policy_score == pytest.approx(58 / 10)
    assert route.details == {"threshold": 10} and route.judge_score is None


def test_a_plugin_policy_section_is_validated_at_load(clean_env: object) -> None:
    routing = {**PLUGIN, "policy": {"name": "length-cutoff", "short_tier": "nano"}}
    with pytest.raises(ConfigError, match="unknown tier 'nano'"):
        load_settings(routing=routing)
    with pytest.raises(ConfigError, match="max_short_chars"):
        load_settings(
            routing={**PLUGIN, "policy": {"name": "length-cutoff", "max_short_chars": "x"}}
        )
    with pytest.raises(ConfigError, match="cannot import plugin module 'no_such_plugin'"):
        load_settings(routing={"plugins": ["no_such_plugin"]})


def test_configured_rules_run_before_the_policy(ledger: Ledger) -> None:
    routing = {
        **PLUGIN,
        "policy": "length-cutoff",
        "rules": [{"name": "vip", "tier": "mid", "user": "vip"}],
    }
    from routeq.records import NewQuery

    with pipeline(ledger, routing=routing) as (runner, _):
        vip = run_one(runner, NewQuery("hello", 2, user="vip"))
        other = run_one(runner, NewQuery("hello", 2, user="someone"))

    assert vip.hops[0].tier == "mid" and vip.hops[0].policy == "rules"
    assert vip.hops[0].details == {"rule": "vip"}
    assert other.hops[0].tier == "cheap" and other.hops[0].policy == "length-cutoff"


def test_a_policy_returning_an_unknown_tier_fails_the_query_with_the_reason(
    ledger: Ledger,
) -> None:
    with pipeline(ledger, routing={**PLUGIN, "policy": "off-the-ladder"}) as (runner, _):
        view = run_one(runner, "hello")

    assert view.status is QueryStatus.FAILED
    assert "'gpt-17-ultra', which is not on the ladder" in (view.final_reason or "")
    assert [h.kind.value for h in view.hops] == ["route"]


def test_a_feature_model_call_is_recorded_on_the_route_hop_with_tokens_and_cost(
    ledger: Ledger, migrated_url: str
) -> None:
    from audit import ledger_rows

    with pipeline(ledger, routing={**PLUGIN, "policy": "ask-the-small-model"}) as (runner, _):
        view = run_one(runner, "What is entropy?")

    route = view.hops[0]
    assert route.tier == "mid" and route.policy == "ask-the-small-model"
    assert route.input_tokens and route.output_tokens and route.cost > Decimal(0)
    _, hops, requests = ledger_rows(migrated_url)
    route_row = hops[view.id][0]
    [request] = requests[route_row.id]
    assert request.model == "sim-small" and request.outcome == "ok"
    assert request.cost == route.cost
    assert view.total_cost == sum(h.cost for h in view.hops)


def test_a_failing_feature_call_routes_by_the_default_tier(ledger: Ledger) -> None:
    sim = sim_config(**{"sim-small": SimModel("sim-small", 1.0, latency_ms=0, fault_500=1.0)})
    routing = {**PLUGIN, "policy": "ask-the-small-model", "default_tier": "frontier"}
    with pipeline(ledger, sim, routing=routing) as (runner, _):
        view = run_one(runner, "What is entropy?")

    assert view.hops[0].tier == "frontier" and view.hops[0].details.get("fallback") is True
    assert "a feature call failed" in (view.hops[0].reason or "")
    assert view.status is QueryStatus.DONE


@pytest.mark.parametrize(
    ("escalation", "second_tier"),
    [("next-tier", "mid"), ("skip-to-top", "frontier"), ("stop", None)],
)
def test_escalation_is_a_replaceable_policy(
    ledger: Ledger, escalation: str, second_tier: str | None
) -> None:
    sim = sim_config(**{"sim-small": SimModel("sim-small", 0.0, latency_ms=0)})
    with pipeline(ledger, sim, routing={"escalation": escalation}) as (runner, _):
        view = run_one(runner, "hello")

    calls = [h.tier for h in view.hops if h.kind.value == "call"]
    assert calls[0] == "cheap"
    if second_tier is None:
        assert calls == ["cheap"] and view.final_tier == "cheap"
        assert "escalation policy 'stop' goes no higher" in (view.final_reason or "")
    else:
        assert calls[1] == second_tier


class Recorder(Hook):
    name = "recorder"

    def __init__(self, gate: CallGate | None = None) -> None:
        self.calls: list[CallContext] = []
        self.verdicts: list[VerdictContext] = []
        self.closed: list[ClosedQuery] = []
        self._gate = gate

    def before_call(self, call: CallContext) -> CallGate:
        self.calls.append(call)
        if self._gate is not None and call.tier == "cheap":
            return self._gate
        return super().before_call(call)

    def after_verdict(self, verdict: VerdictContext) -> None:
        self.verdicts.append(verdict)

    def on_close(self, query: ClosedQuery) -> None:
        self.closed.append(query)


def test_hooks_see_every_call_verdict_and_close(ledger: Ledger) -> None:
    hook = Recorder()
    sim = sim_config(
        **{
            "sim-small": SimModel("sim-small", 0.0, latency_ms=0),
            "sim-medium": SimModel("sim-medium", 1.0, latency_ms=0),
        }
    )
    with pipeline(ledger, sim, pipeline={"hooks": [hook]}) as (runner, _):
        view = run_one(runner, "hello")

    assert [c.tier for c in hook.calls] == ["cheap", "mid"]
    assert all(c.max_cost > 0 and c.query_id == view.id for c in hook.calls)
    assert next((v.tier, v.next_step, v.next_tier) for v in hook.verdicts) == (
        "cheap",
        "escalate",
        "mid",
    )
    assert [(c.query_id, c.status) for c in hook.closed] == [(view.id, QueryStatus.DONE)]


def test_a_hook_can_deny_a_call(ledger: Ledger, migrated_url: str) -> None:
    hook = Recorder(Deny("over budget"))
    with pipeline(ledger, pipeline={"hooks": [hook]}) as (runner, _):
        view = run_one(runner, "hello")

    assert view.status is QueryStatus.FAILED
    assert view.final_reason == "call on cheap denied: over budget"
    assert view.total_cost == 0 and hook.closed[0].status is QueryStatus.FAILED
    assert view.hops[1].details == {"gate": "denied"}
    journey = reported_journey(migrated_url, view.id)
    assert (journey.calls, journey.tier_path, journey.escalations) == (0, [], 0)


def reported_journey(database_url: str, query_id: object) -> Any:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT * FROM query_journeys WHERE query_id = :id"), {"id": query_id}
        ).one()
    engine.dispose()
    return row


def test_a_hook_can_move_a_call_to_another_tier(ledger: Ledger, migrated_url: str) -> None:
    hook = Recorder(MoveTo("mid", "cheap tier is reserved"))
    with pipeline(ledger, pipeline={"hooks": [hook]}) as (runner, _):
        view = run_one(runner, "hello")

    calls = [h for h in view.hops if h.kind.value == "call"]
    assert calls[0].tier == "cheap" and calls[0].output_tokens is None and calls[0].cost == 0
    assert calls[0].details == {"gate": "moved", "to": "mid"}
    assert "moved from cheap to mid: cheap tier is reserved" in (calls[0].reason or "")
    assert calls[1].tier == "mid" and view.final_tier in ("mid", "frontier")
    # the moved hop was never a call: the journey starts on mid, with no escalation into it
    journey = reported_journey(migrated_url, view.id)
    assert journey.tier_path[0] == "mid" and journey.calls == len(journey.tier_path)
    assert journey.escalations == len(set(journey.tier_path)) - 1


def test_a_hook_that_raises_denies_the_call_rather_than_spend(ledger: Ledger) -> None:
    class Broken(Hook):
        name = "broken"

        def before_call(self, call: CallContext) -> CallGate:
            raise RuntimeError("budget store down")

    with pipeline(ledger, pipeline={"hooks": [Broken()]}) as (runner, _):
        view = run_one(runner, "hello")

    assert view.status is QueryStatus.FAILED and "hook 'broken' failed" in view.final_reason


def test_a_ledger_failure_under_a_feature_call_retries_the_delivery_not_fails_the_query(
    migrated_url: str, ledger: Ledger
) -> None:
    import sqlalchemy.exc

    class FlakyLedger(Ledger):
        """The database drops the first provider-request write (a failover, say)."""

        dropped = 0

        def begin_request(self, *args: Any, **kwargs: Any) -> int:
            if not self.dropped:
                self.dropped += 1
                raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("server closed"))
            return super().begin_request(*args, **kwargs)

    flaky = FlakyLedger(ledger.engine)
    with pipeline(flaky, routing={**PLUGIN, "policy": "ask-the-small-model"}) as (runner, _):
        [query_id] = runner.submit(["What is entropy?"])
        report = runner.run()

    view = ledger.view(query_id)
    assert flaky.dropped == 1 and report.retries == 1 and "OperationalError" in report.errors[0]
    assert view.status is QueryStatus.DONE and view.hops[0].policy == "ask-the-small-model"
    assert view.hops[0].attempts == 2  # the route hop was delivered again, not failed


def test_after_verdict_comes_before_on_close_and_each_query_closes_once(ledger: Ledger) -> None:
    moments: list[str] = []

    class Order(Hook):
        name = "order"

        def after_verdict(self, verdict: VerdictContext) -> None:
            moments.append(f"verdict:{verdict.next_step}")

        def on_close(self, query: ClosedQuery) -> None:
            moments.append(f"close:{query.status.value}")

    sim = sim_config(**{"sim-small": SimModel("sim-small", 1.0, latency_ms=0)})
    with pipeline(ledger, sim, pipeline={"hooks": [Order()]}) as (runner, _):
        view = run_one(runner, "hello")
        # a settle of a query that is already final closes nothing and tells no hook
        from routeq.worker.steps import settle_orphan

        settle_orphan(runner.runtime, view.id)
        runner.runtime.ledger.fail_query(view.id, "too late")

    assert moments == ["verdict:accept", "close:done"]
    assert ledger.view(view.id).status is QueryStatus.DONE


def test_a_query_failed_by_the_reconciler_is_told_to_the_hooks(ledger: Ledger) -> None:
    hook = Recorder()
    with pipeline(ledger, pipeline={"hooks": [hook]}) as (runner, _):
        [query_id] = runner.submit(["hello"])
        runner.queue.pop()  # its route message is lost and its hop left queued...
        ledger.engine.dispose()
        import sqlalchemy as sa

        with ledger.engine.begin() as conn:  # ...then failed by an operator's hand
            conn.execute(
                sa.text("UPDATE hops SET status = 'done' WHERE query_id = :q"), {"q": query_id}
            )
        from routeq.worker.steps import settle_orphan

        settle_orphan(runner.runtime, query_id)

    assert [(c.query_id, c.status) for c in hook.closed] == [(query_id, QueryStatus.FAILED)]
    assert "closed by the reconciler" in hook.closed[0].reason


def test_hooks_need_only_the_methods_they_use(ledger: Ledger) -> None:
    class OnlyCloses:  # no name, no before_call, no after_verdict
        def __init__(self) -> None:
            self.closed = 0

        def on_close(self, query: ClosedQuery) -> None:
            self.closed += 1

    hook = OnlyCloses()
    with pipeline(ledger, pipeline={"hooks": [hook]}) as (runner, _):
        view = run_one(runner, "hello")

    assert view.status is QueryStatus.DONE and hook.closed == 1


def test_hooks_moving_a_call_back_and_forth_cannot_loop(ledger: Ledger) -> None:
    class PingPong(Hook):
        name = "ping-pong"

        def before_call(self, call: CallContext) -> CallGate:
            return MoveTo("mid" if call.tier == "cheap" else "cheap", "no, the other one")

    with pipeline(ledger, pipeline={"hooks": [PingPong()]}) as (runner, _):
        [query_id] = runner.submit(["hello"])
        report = runner.run(max_steps=200)

    view = ledger.view(query_id)
    assert view.finished and report.steps < 200
    # moves stop at 1 + 6 per tier hops; then the call is made and the query ends as usual
    moved = [h for h in view.hops if h.details.get("gate") == "moved"]
    assert moved and max(h.seq for h in moved) <= 1 + 6 * 3
    assert len(view.hops) - len(moved) <= 1 + 2 * 3
