"""The rules policy: ordered rules from config, first match wins, else the default tier.

With no rules configured it runs the classic starter router: summaries start on the cheapest
tier; code, debugging, "why doesn't" and proofs go to the strongest tier, very long queries too;
short chit-chat goes to the cheapest; the rest to the middle.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from routeq.config import NamedConfig, RuleConfig, Settings
from routeq.policies.base import Decision, Policy, QueryView
from routeq.policies.features import Feature
from routeq.policies.registry import register_policy

STARTER_KEYWORDS = ("code", "debug", "debugging", "why doesn't", "proof", "prove")
LONG_QUERY_CHARS = 1_000
CHIT_CHAT_CHARS = 50


def starter_rules(tier_names: Sequence[str]) -> list[RuleConfig]:
    """The starter router's rules for a ladder (cheapest first)."""
    cheapest, strongest = tier_names[0], tier_names[-1]
    return [
        # Summaries are the classic easy task: start cheap, let the summary checks escalate.
        # Without this rule every long document would match "long-query" below.
        RuleConfig(name="summaries-start-cheap", tier=cheapest, task="summarize"),
        RuleConfig(name="code-debug-proof", tier=strongest, keywords=list(STARTER_KEYWORDS)),
        RuleConfig(name="long-query", tier=strongest, min_chars=LONG_QUERY_CHARS + 1),
        RuleConfig(
            name="chit-chat", tier=cheapest, max_chars=CHIT_CHAT_CHARS - 1, forbid_chars="?:;"
        ),
    ]


def middle_tier(tier_names: Sequence[str]) -> str:
    return tier_names[len(tier_names) // 2]


def default_tier(settings: Settings) -> str:
    """Where a query goes when no rule decides: ``routing.default_tier``, else the middle."""
    return settings.routing.default_tier or middle_tier(settings.tier_names)


@dataclass(frozen=True)
class _CompiledRule:
    config: RuleConfig
    keyword_pattern: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, rule: RuleConfig) -> _CompiledRule:
        keyword_pattern = None
        if rule.keywords:
            # Word boundaries so "code" does not fire on "decode"; case-insensitive.
            alternatives = "|".join(re.escape(word) for word in rule.keywords)
            keyword_pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return cls(rule, keyword_pattern, tuple(re.compile(p) for p in rule.regex))

    def explain_match(self, query: QueryView) -> str | None:
        """Why the rule matches, or None when it does not."""
        rule, text, length = self.config, query.text, len(query.text)
        why: list[str] = []
        if rule.task is not None:
            if query.task != rule.task:
                return None
            why.append(f"task {rule.task}")
        if self.keyword_pattern is not None:
            found = self.keyword_pattern.search(text)
            if found is None:
                return None
            why.append(f"keyword {found.group(0).lower()!r}")
        if self.patterns:
            hit = next((p for p in self.patterns if p.search(text)), None)
            if hit is None:
                return None
            why.append(f"regex {hit.pattern!r}")
        if rule.min_chars is not None:
            if length < rule.min_chars:
                return None
            why.append(f"{length} chars >= {rule.min_chars}")
        if rule.max_chars is not None:
            if length > rule.max_chars:
                return None
            why.append(f"{length} chars <= {rule.max_chars}")
        if rule.min_tokens is not None:
            if query.token_count < rule.min_tokens:
                return None
            why.append(f"{query.token_count} tokens >= {rule.min_tokens}")
        if rule.max_tokens is not None:
            if query.token_count > rule.max_tokens:
                return None
            why.append(f"{query.token_count} tokens <= {rule.max_tokens}")
        if rule.forbid_chars:
            if any(char in text for char in rule.forbid_chars):
                return None
            why.append(f"none of {rule.forbid_chars!r}")
        for key, expected in rule.metadata.items():
            if key not in query.metadata or str(query.metadata[key]) != expected:
                return None
            why.append(f"metadata {key}={expected}")
        if rule.user is not None:
            if query.user != rule.user:
                return None
            why.append(f"user {rule.user}")
        return ", ".join(why) or "always"


class RulesPolicy:
    """Ordered rules, first match wins; the default tier otherwise. Its version is a hash of
    the rules and the default, so a change of rules shows on the ledger as a new version."""

    name = "rules"
    features: Sequence[Feature] = ()

    def __init__(self, rules: Sequence[RuleConfig], default_tier: str | None) -> None:
        self._rules = [_CompiledRule.compile(rule) for rule in rules]
        self._default_tier = default_tier
        canonical = json.dumps(
            [[rule.model_dump(mode="json") for rule in rules], default_tier], sort_keys=True
        )
        self.version = hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def match(self, query: QueryView) -> Decision | None:
        """The first matching rule's decision, or None."""
        for compiled in self._rules:
            why = compiled.explain_match(query)
            if why is not None:
                rule = compiled.config
                return Decision(
                    tier=rule.tier,
                    reason=f"rule {rule.name!r}: {why}",
                    rule=rule.name,
                    policy=self.name,
                    version=self.version,
                    details={"rule": rule.name},
                )
        return None

    def decide(self, query: QueryView) -> Decision:
        matched = self.match(query)
        if matched is not None:
            return matched
        if self._default_tier is None:
            raise ValueError("no rule matched and the rules policy has no default tier")
        return Decision(
            tier=self._default_tier,
            reason="no rule matched: default tier",
            policy=self.name,
            version=self.version,
        )


class RulesPolicyConfig(NamedConfig):
    """The rules policy has no options of its own: it runs ``routing.rules`` (or the starter
    rules) and ``routing.default_tier``."""

    name: Literal["rules"] = "rules"


@register_policy(RulesPolicyConfig)
def rules_policy(config: RulesPolicyConfig, settings: Settings) -> Policy:
    routing = settings.routing
    rules = routing.rules if routing.rules is not None else starter_rules(settings.tier_names)
    return RulesPolicy(rules, default_tier(settings))
