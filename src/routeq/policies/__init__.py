"""Routing policies (pure): the protocol, the registry, the rules policy, escalation, features.

Importing this package registers the built-in policies and escalation policies; the settings
import it when they load (``config.load_plugins``) so that their names validate.
"""

from __future__ import annotations

from routeq.config import Settings
from routeq.policies.base import Decision, Policy, QueryView
from routeq.policies.escalation import EscalationPolicy, build_escalation, register_escalation
from routeq.policies.features import Feature, ModelCalls, ModelReply, TokenCount
from routeq.policies.ladder import (
    fit_to_context,
    fits,
    rerun_tier,
    shadow_sampled,
    shadow_tier,
    tier_for_escalation,
)
from routeq.policies.llm_classifier import LLMClassifierConfig, LLMClassifierPolicy
from routeq.policies.registry import build_configured_policy, register_policy
from routeq.policies.router import InvalidDecisionError, Router, UnknownTierError, build_router
from routeq.policies.rules import (
    RulesPolicy,
    RulesPolicyConfig,
    default_tier,
    middle_tier,
    starter_rules,
)


def build_policy(settings: Settings) -> Policy:
    """The configured policy (without the rules that run before it: see ``build_router``)."""
    return build_configured_policy(settings)


__all__ = [
    "Decision",
    "EscalationPolicy",
    "Feature",
    "InvalidDecisionError",
    "LLMClassifierConfig",
    "LLMClassifierPolicy",
    "ModelCalls",
    "ModelReply",
    "Policy",
    "QueryView",
    "Router",
    "RulesPolicy",
    "RulesPolicyConfig",
    "TokenCount",
    "UnknownTierError",
    "build_escalation",
    "build_policy",
    "build_router",
    "default_tier",
    "fit_to_context",
    "fits",
    "middle_tier",
    "register_escalation",
    "register_policy",
    "rerun_tier",
    "shadow_sampled",
    "shadow_tier",
    "starter_rules",
    "tier_for_escalation",
]
