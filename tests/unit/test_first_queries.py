"""Unit tests of ``[routing.first_queries]``: a new user's first queries go to a strong tier,
decided by the router after the configured rules and before the policy (routeq.policies.router),
and the route step asks the ledger for the user's history only when the option needs it."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from routeq.config import ModelEndpoint, Settings, load_settings
from routeq.errors import ConfigError
from routeq.policies import QueryView, build_router
from routeq.policies.router import FirstQueries
from routeq.records import QueryInput, QueryRole, QueryStatus
from routeq.worker.steps import _earlier_queries


class NoCalls:
    """A ``ModelCalls`` that must not be used."""

    def complete(
        self, endpoint: ModelEndpoint, messages: list[dict[str, str]], max_tokens: int
    ) -> str:
        raise AssertionError("no model call expected")


class Replies:
    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, 0

    def complete(
        self, endpoint: ModelEndpoint, messages: list[dict[str, str]], max_tokens: int
    ) -> str:
        self.calls += 1
        return self.reply


@pytest.fixture(autouse=True)
def _no_config_file(clean_env: Path) -> None:
    """Every test loads the defaults (the simulated cheap/mid/frontier ladder)."""


def settings(first: dict[str, Any] | None = None, **routing: Any) -> Settings:
    if first is not None:
        routing["first_queries"] = first
    return load_settings(routing=routing)


def view(text: str = "hello", user: str | None = "ann", earlier: int | None = 0) -> QueryView:
    return QueryView(text, len(text.split()), user=user, user_query_count=earlier)


# -- configuration --------------------------------------------------------------------------------


class TestConfig:
    def test_absent_is_off(self) -> None:
        assert settings().routing.first_queries is None
        assert build_router(settings()).first_queries is None

    def test_an_empty_section_is_ten_queries_on_the_top_tier(self) -> None:
        router = build_router(settings({}))
        assert router.first_queries == FirstQueries(10, "frontier")

    def test_count_zero_is_off(self) -> None:
        assert build_router(settings({"count": 0})).first_queries is None

    def test_a_tier_of_ones_own(self) -> None:
        assert build_router(settings({"tier": "mid"})).first_queries == FirstQueries(10, "mid")

    @pytest.mark.parametrize(
        ("section", "message"),
        [
            ({"tier": "huge"}, "routing.first_queries.tier names unknown tier 'huge'"),
            ({"count": -1}, "count"),
            ({"cuont": 3}, "cuont"),
        ],
    )
    def test_bad_sections_are_refused_at_load(self, section: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            settings(section)

    def test_it_loads_from_a_config_file(self, clean_env: Path) -> None:
        (clean_env / "routeq.toml").write_text(
            '[routing.first_queries]\ncount = 3\ntier = "mid"\n', encoding="utf-8"
        )
        assert build_router(load_settings()).first_queries == FirstQueries(3, "mid")

    def test_it_survives_a_written_config(self, tmp_path: Path) -> None:
        from routeq.config import write_config

        for section in (None, {"count": 4}):
            path = write_config(settings(section), tmp_path / "routeq.toml")
            assert (
                load_settings(path).routing.first_queries == settings(section).routing.first_queries
            )


# -- the router's decision ------------------------------------------------------------------------


class TestDecision:
    def test_a_new_users_query_goes_to_the_top_tier_with_the_reason(self) -> None:
        decision = build_router(settings({"count": 2})).decide(view(earlier=0), NoCalls())
        assert decision.tier == "frontier"
        assert decision.reason == "first 2 queries of a new user (0 earlier)"
        assert decision.details == {"first_queries": 0}
        assert (decision.policy, decision.version) == ("first-queries", "2:frontier")

    @pytest.mark.parametrize(("earlier", "boosted"), [(0, True), (1, True), (2, False), (9, False)])
    def test_only_fewer_than_count_earlier_queries_are_boosted(
        self, earlier: int, boosted: bool
    ) -> None:
        decision = build_router(settings({"count": 2})).decide(view(earlier=earlier), NoCalls())
        # "hello" is chit-chat to the starter rules: the cheapest tier when not boosted
        assert decision.tier == ("frontier" if boosted else "cheap")
        assert (decision.policy == "first-queries") is boosted

    def test_a_query_without_a_user_or_without_a_count_is_unaffected(self) -> None:
        router = build_router(settings({"count": 2}))
        assert router.decide(view(user=None, earlier=0), NoCalls()).tier == "cheap"
        assert router.decide(view(earlier=None), NoCalls()).tier == "cheap"

    def test_off_it_ignores_a_count(self) -> None:
        assert build_router(settings()).decide(view(earlier=0), NoCalls()).tier == "cheap"

    def test_configured_rules_come_first_for_the_rules_policy(self) -> None:
        rules = [{"name": "greetings", "tier": "mid", "keywords": ["hello"]}]
        router = build_router(settings({"count": 2}, rules=rules))
        ruled = router.decide(view("hello"), NoCalls())
        assert ruled.tier == "mid" and ruled.rule == "greetings" and ruled.policy == "rules"
        assert ruled.version == router.policy.version  # the rules policy's own version
        other = router.decide(view("what is up"), NoCalls())
        assert other.tier == "frontier" and other.policy == "first-queries"
        old_hand = router.decide(view("what is up", earlier=2), NoCalls())
        assert old_hand.tier == "mid" and old_hand.reason == "no rule matched: default tier"

    def test_configured_rules_come_first_and_the_policy_last_for_another_policy(self) -> None:
        rules = [{"name": "greetings", "tier": "mid", "keywords": ["hello"]}]
        policy = {"name": "llm-classifier", "labels": {"easy": "cheap", "hard": "frontier"}}
        router = build_router(settings({"count": 2}, rules=rules, policy=policy))
        assert router.decide(view("hello"), NoCalls()).tier == "mid"
        # a boosted query costs no classifier call
        assert router.decide(view("what is up"), NoCalls()).policy == "first-queries"
        classifier = Replies("easy")
        decided = router.decide(view("what is up", earlier=5), classifier)
        assert decided.tier == "cheap" and decided.policy == "llm-classifier"
        assert classifier.calls == 1


# -- the route step asks the ledger only when it must ---------------------------------------------


class CountingLedger:
    def __init__(self, earlier: int) -> None:
        self.earlier = earlier
        self.asked: list[tuple[str, uuid.UUID, int]] = []

    def count_earlier_queries(self, user: str, before: uuid.UUID, *, at_most: int) -> int:
        self.asked.append((user, before, at_most))
        return min(self.earlier, at_most)


def query(user: str | None = "ann", role: QueryRole = QueryRole.ANSWER) -> QueryInput:
    return QueryInput(uuid.uuid4(), "hello", 1, {}, user, QueryStatus.QUEUED, role=role)


class TestRouteStep:
    def runtime(self, first: dict[str, Any] | None, earlier: int = 1) -> Any:
        return SimpleNamespace(router=build_router(settings(first)), ledger=CountingLedger(earlier))

    def test_on_it_asks_for_the_users_count_capped_at_the_option(self) -> None:
        rt = self.runtime({"count": 3}, earlier=7)
        item = query()
        assert _earlier_queries(rt, item) == 3
        assert rt.ledger.asked == [("ann", item.id, 3)]

    @pytest.mark.parametrize(
        ("first", "item"),
        [
            (None, query()),
            ({"count": 0}, query()),
            ({"count": 3}, query(user=None)),
            ({"count": 3}, query(role=QueryRole.DOCUMENT)),
            ({"count": 3}, query(role=QueryRole.PART)),
        ],
        ids=["off", "count-0", "no-user", "document", "part"],
    )
    def test_otherwise_it_asks_nothing(
        self, first: dict[str, Any] | None, item: QueryInput
    ) -> None:
        rt = self.runtime(first)
        assert _earlier_queries(rt, item) is None
        assert rt.ledger.asked == []
