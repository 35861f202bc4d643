"""Routing policies (pure). ``build_policy`` turns the routing config into a policy object."""

from __future__ import annotations

from routeq.config import Settings
from routeq.policies.base import Decision, Policy, QueryView
from routeq.policies.ladder import fit_to_context, tier_for_escalation
from routeq.policies.rules import RulesPolicy, middle_tier, starter_rules


def build_policy(settings: Settings) -> Policy:
    """The configured policy. Only the rules policy exists today; learned ones plug in here."""
    routing = settings.routing
    rules = routing.rules if routing.rules is not None else starter_rules(settings.tier_names)
    default = routing.default_tier or middle_tier(settings.tier_names)
    return RulesPolicy(rules, default)


__all__ = [
    "Decision",
    "Policy",
    "QueryView",
    "RulesPolicy",
    "build_policy",
    "fit_to_context",
    "middle_tier",
    "starter_rules",
    "tier_for_escalation",
]
