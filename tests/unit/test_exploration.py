"""Exploration (``routing.explore_share``): a hash of the query id sends that share of the
policy's decisions to a tier drawn uniformly from the ladder, so every tier gets training labels
on a random sample. Configured rules (and only they) still win."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError
from tierspec import tier_dict

from routeq.config import ModelEndpoint, Settings
from routeq.policies import Decision, QueryView, build_router
from routeq.policies.features import Feature
from routeq.policies.router import Router, exploration_tier

TIERS = ("cheap", "mid", "frontier")
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"routeq-exploration-test-{i}")) for i in range(10_000)]


class NoCalls:
    """No feature of these tests calls a model."""

    def complete(
        self, endpoint: ModelEndpoint, messages: list[dict[str, str]], max_tokens: int
    ) -> str:
        raise AssertionError("no model call expected")


@dataclass
class Always:
    """A policy that always wants ``tier``, and says so in its details."""

    tier: str = "mid"
    name: str = "always"
    version: str = "1"
    features: Sequence[Feature] = field(default_factory=tuple)

    def decide(self, query: QueryView) -> Decision:
        return Decision(self.tier, "it always does", score=0.25, details={"why": "fixed"})


def view(
    query_id: str | None, text: str = "what is the capital of France?", **extra: Any
) -> QueryView:
    return QueryView(text, 8, query_id=query_id, **extra)


def router(share: float) -> Router:
    return Router(Always(), TIERS, explore_share=share)


def settings(**routing: Any) -> Settings:
    return Settings(tiers=[tier_dict(name) for name in TIERS], routing=routing)


# -- the draw -------------------------------------------------------------------------------------


def test_share_zero_never_explores_and_share_one_always_does() -> None:
    assert all(exploration_tier(i, 0.0, TIERS) is None for i in IDS)
    drawn = [exploration_tier(i, 1.0, TIERS) for i in IDS]
    assert None not in drawn


def test_about_share_of_ten_thousand_ids_explore_spread_evenly_over_the_tiers() -> None:
    drawn = [exploration_tier(i, 0.1, TIERS) for i in IDS]
    explored = [tier for tier in drawn if tier is not None]
    # The hash is deterministic, so the count is exact; it is also within 1 point of the share.
    assert len(explored) == 936
    assert abs(len(explored) / len(IDS) - 0.1) <= 0.01
    counts = Counter(explored)
    assert set(counts) == set(TIERS)
    assert all(abs(n / len(explored) - 1 / 3) < 0.05 for n in counts.values()), counts
    # With share 1 every tier gets about a third of all ids
    everything = Counter(exploration_tier(i, 1.0, TIERS) for i in IDS)
    assert all(abs(n / len(IDS) - 1 / 3) < 0.02 for n in everything.values()), everything


def test_a_larger_share_explores_a_superset_of_a_smaller_ones_ids() -> None:
    # the same hash decides: raising the share adds ids, it never reshuffles the earlier ones
    small = {i for i in IDS if exploration_tier(i, 0.05, TIERS) is not None}
    large = {i for i in IDS if exploration_tier(i, 0.2, TIERS) is not None}
    assert small < large


def test_the_same_id_always_gets_the_same_choice() -> None:
    for query_id in IDS[:200]:
        first = router(0.5).decide(view(query_id), NoCalls())
        again = router(0.5).decide(view(query_id), NoCalls())  # a redelivery, a new worker
        assert first == again


# -- the router -----------------------------------------------------------------------------------


def test_share_zero_keeps_every_policy_decision() -> None:
    decisions = [router(0.0).decide(view(i), NoCalls()) for i in IDS[:500]]
    assert {d.tier for d in decisions} == {"mid"}
    assert not any("explore" in d.details for d in decisions)


def test_an_explored_decision_records_the_policy_choice_and_says_it_explored() -> None:
    decisions = [router(1.0).decide(view(i), NoCalls()) for i in IDS[:300]]
    assert {d.tier for d in decisions} == set(TIERS)  # uniform: sometimes the policy's own
    for decision in decisions:
        assert decision.details == {
            "why": "fixed",
            "explore": True,
            "policy_choice": "mid",
            "explore_share": 1.0,
        }
        assert decision.reason.startswith(f"explored: {decision.tier} drawn at random")
        assert "in place of the policy's mid (it always does)" in decision.reason
        assert (decision.policy, decision.version, decision.score) == ("always", "1", 0.25)


def test_only_a_user_answer_query_with_an_id_explores() -> None:
    explore = router(1.0)
    assert explore.decide(view(None), NoCalls()).tier == "mid"  # no id: nothing to hash
    for role in ("document", "part", "combine", "shadow", "rerun"):
        assert "explore" not in explore.decide(view(IDS[0], role=role), NoCalls()).details
    summary = explore.decide(view(IDS[0], task="summarize"), NoCalls())
    assert "explore" not in summary.details


def test_configured_rules_win_over_exploration() -> None:
    rules = [{"name": "code", "tier": "frontier", "keywords": ["code"]}]
    # the rules policy running configured rules: a matching rule wins
    configured = build_router(settings(rules=rules, explore_share=1.0, default_tier="mid"))
    for query_id in IDS[:100]:
        code = configured.decide(view(query_id, "write code for me"), NoCalls())
        assert (code.tier, code.rule) == ("frontier", "code")
        assert "explore" not in code.details
        other = configured.decide(view(query_id), NoCalls())  # no rule: the default, explored
        assert other.details["explore"] is True and other.details["policy_choice"] == "mid"
    # a policy other than rules: the configured rules run before it, and win there too
    plugin = build_router(settings(rules=rules, explore_share=1.0), Always("cheap"))
    code = plugin.decide(view(IDS[1], "write code for me"), NoCalls())
    assert (code.tier, code.rule, code.details) == ("frontier", "code", {"rule": "code"})
    assert plugin.decide(view(IDS[1]), NoCalls()).details["policy_choice"] == "cheap"


def test_the_configured_rules_keep_their_version_when_exploration_is_on() -> None:
    rules = [{"name": "code", "tier": "frontier", "keywords": ["code"]}]
    off = build_router(settings(rules=rules)).decide(view(IDS[0], "code"), NoCalls())
    on = build_router(settings(rules=rules, explore_share=0.3)).decide(
        view(IDS[0], "code"), NoCalls()
    )
    assert off == on


def test_the_starter_rules_are_no_operator_choice_and_are_explored() -> None:
    starter = build_router(settings(explore_share=1.0))
    decision = starter.decide(view(IDS[2], "hello"), NoCalls())  # chit-chat: cheap
    assert decision.details["policy_choice"] == "cheap" and decision.rule is None
    assert "rule" not in decision.details  # no rule decided the tier it went to
    assert "rule 'chit-chat'" in decision.reason


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), "often"])
def test_a_share_outside_zero_to_one_is_refused_at_load(share: Any) -> None:
    with pytest.raises(ValidationError, match="explore_share"):
        settings(explore_share=share)


def test_the_default_share_is_zero() -> None:
    assert settings().routing.explore_share == 0.0
    assert build_router(settings()).explore_share == 0.0
