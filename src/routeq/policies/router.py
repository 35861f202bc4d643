"""The route decision as a whole: configured rules first, then the policy on what they leave.

The router also checks what a policy returns: a tier the ladder does not have is an
``UnknownTierError``, which the route step turns into a failed query with the reason, rather
than an error in the middle of the pipeline. Pure: model calls for features go through the
``ModelCalls`` the caller passes.
"""

from __future__ import annotations

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
class Router:
    policy: Policy
    tier_names: tuple[str, ...]
    rules: RulesPolicy | None = None  # rules that run before a policy other than "rules"

    def decide(self, query: QueryView, calls: ModelCalls) -> Decision:
        """The rules' decision, or the policy's (after computing the features it declared),
        stamped with the policy's name and version."""
        if self.rules is not None:
            matched = self.rules.match(query)
            if matched is not None:
                return self._checked(matched)
        features = compute_features(self.policy.features, query, calls)
        decision = self.policy.decide(query.with_features(features) if features else query)
        return self._checked(
            replace(
                decision,
                policy=decision.policy or self.policy.name,
                version=decision.version or self.policy.version,
            )
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
    return Router(policy, tuple(settings.tier_names), rules)
