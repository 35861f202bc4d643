"""The route decision as a whole: configured rules first, then the policy on what they leave.

The router also checks what a policy returns: a tier the ladder does not have is an
``UnknownTierError``, which the route step turns into a failed query with the reason, rather
than an error in the middle of the pipeline. Pure: model calls for features go through the
``ModelCalls`` the caller passes.

With ``routing.explore_share`` the router overrides that share of the policy's decisions with a
tier drawn uniformly from the ladder, by a hash of the query id (``exploration_tier``), so every
tier gets training labels on a random sample (docs/training-data.md). Configured rules win.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from routeq.config import Settings
from routeq.policies.base import Decision, Policy, QueryView
from routeq.policies.features import ModelCalls, compute_features
from routeq.policies.registry import build_configured_policy
from routeq.policies.rules import RulesPolicy


class InvalidDecisionError(ValueError):
    """A policy's decision the route hop cannot take: its query fails with the reason."""


class UnknownTierError(InvalidDecisionError):
    """A policy chose a tier the ladder does not have."""


@dataclass(frozen=True)
class FirstQueries:
    """``routing.first_queries`` resolved: a user's first ``count`` queries go to ``tier``."""

    count: int
    tier: str

    name = "first-queries"  # what decided, on the route hop

    @property
    def version(self) -> str:
        return f"{self.count}:{self.tier}"

    def match(self, query: QueryView) -> Decision | None:
        """The strong tier for a user with fewer than ``count`` earlier queries, else None
        (and None for a query whose count the route step did not ask for)."""
        earlier = query.user_query_count
        if query.user is None or earlier is None or earlier >= self.count:
            return None
        return Decision(
            tier=self.tier,
            reason=f"first {self.count} queries of a new user ({earlier} earlier)",
            policy=self.name,
            version=self.version,
            details={"first_queries": earlier},
        )


@dataclass(frozen=True)
class Router:
    policy: Policy
    tier_names: tuple[str, ...]
    rules: RulesPolicy | None = None  # rules that run before a policy other than "rules"
    first_queries: FirstQueries | None = None  # after the rules, before the policy
    explore_share: float = 0.0  # routing.explore_share: of the policy's decisions only

    def decide(self, query: QueryView, calls: ModelCalls) -> Decision:
        """The rules' decision, a new user's first-queries tier, or the policy's (after
        computing the features it declared), stamped with the policy's name and version."""
        if self.rules is not None:
            matched = self.rules.match(query)
            if matched is not None:
                return self._checked(matched)
        if self.first_queries is not None:
            first = self.first_queries.match(query)
            if first is not None:
                return self._checked(first)
        features = compute_features(self.policy.features, query, calls)
        decision = self.policy.decide(query.with_features(features) if features else query)
        chosen = self._checked(
            replace(
                decision,
                policy=decision.policy or self.policy.name,
                version=decision.version or self.policy.version,
            )
        )
        return self._explored(query, chosen)

    def _explored(self, query: QueryView, decision: Decision) -> Decision:
        """The policy's ``decision``, or in its place the tier that exploration draws for this
        query. Only a user's answer query with an id explores: documents, their pieces,
        shadows and re-runs give no training labels (docs/training-data.md), so exploring
        them would only cost. The policy's choice stays on the hop (``policy_choice``)."""
        if query.query_id is None or query.role != "answer" or query.task != "answer":
            return decision
        tier = exploration_tier(query.query_id, self.explore_share, self.tier_names)
        if tier is None:
            return decision
        details = {key: value for key, value in decision.details.items() if key != "rule"}
        return replace(
            decision,
            tier=tier,
            rule=None,  # no rule decided: the hop must not say one did
            reason=(
                f"explored: {tier} drawn at random (routing.explore_share="
                f"{self.explore_share:g}) in place of the policy's {decision.tier} "
                f"({decision.reason})"
            ),
            details={
                **details,
                "explore": True,
                "policy_choice": decision.tier,
                "explore_share": self.explore_share,  # for weighting: P(tier) = share / tiers
            },
        )

    def _checked(self, decision: Decision) -> Decision:
        for value in (decision.policy, decision.version):
            if value is not None and len(value) > MAX_NAME_CHARS:
                raise InvalidDecisionError(
                    f"policy {decision.policy!r:.100} returned a name or version longer than "
                    f"{MAX_NAME_CHARS} characters"
                )
        if decision.tier not in self.tier_names:
            raise UnknownTierError(
                f"policy {decision.policy!r} chose tier {decision.tier!r}, which is not on the "
                f"ladder (tiers: {', '.join(self.tier_names)})"
            )
        return decision


MAX_NAME_CHARS = 80  # hops.policy and hops.policy_version

_EXPLORE_SALT = "routeq-explore"


def exploration_tier(query_id: str, share: float, tiers: Sequence[str]) -> str | None:
    """The tier exploration sends query ``query_id`` to, or None when the policy's choice
    stands (with probability ``1 - share``).

    A hash of the id decides, not a random draw: a redelivered route hop, or a replay of the
    ledger, decides the same way, and no random state is shared between workers. Of the
    SHA-256 of the salted id, the first 8 bytes decide whether to explore (below ``share`` as
    a fraction of 2**64), the next 8 which tier, uniformly (modulo the number of tiers: a bias
    of at most len(tiers) / 2**64)."""
    if share <= 0 or not tiers:
        return None
    digest = hashlib.sha256(f"{_EXPLORE_SALT}:{query_id}".encode()).digest()
    if int.from_bytes(digest[:8], "big") >= share * 2**64:
        return None
    return tiers[int.from_bytes(digest[8:16], "big") % len(tiers)]


def build_router(settings: Settings, policy: Policy | None = None) -> Router:
    """The configured router. ``policy`` overrides the configured one (tests, evaluation).
    A policy whose name or version the route hop cannot hold is refused here, at start, not
    at every query."""
    policy = policy or build_configured_policy(settings)
    for what, value in (("name", policy.name), ("version", policy.version)):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
            raise ValueError(
                f"routing policy {what} must be a string of 1 to {MAX_NAME_CHARS} characters, "
                f"got {value!r:.100}"
            )
    configured = settings.routing.rules
    rules = None
    if policy.name != "rules" and configured:
        rules = RulesPolicy(configured, default_tier=None)
    option = settings.routing.first_queries
    first = None
    if option is not None and option.count > 0:
        first = FirstQueries(option.count, option.tier or settings.top_tier.name)
        if configured and isinstance(policy, RulesPolicy):
            rules = policy  # configured rules still come first; its default tier comes after
    explore_share = settings.routing.explore_share
    if explore_share > 0 and configured and isinstance(policy, RulesPolicy):
        rules = policy  # a configured rule wins over exploration: it decides before the policy
    return Router(policy, tuple(settings.tier_names), rules, first, explore_share=explore_share)
