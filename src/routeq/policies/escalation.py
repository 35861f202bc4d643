"""Escalation policies: where a query goes after its answer failed the judge or its call failed.

The default climbs one tier (to the next tier whose window holds the query); ``skip-to-top``
jumps straight to the strongest tier that holds it; ``stop`` never escalates (the answer is
accepted, or the query fails). Each is a registered component with its own config class, like
routing policies, so a deployment can plug in its own (``[routing.escalation] name = ...``).
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from routeq.config import NamedConfig, Settings, TierConfig
from routeq.policies.ladder import fits, tier_for_escalation
from routeq.policies.registry import ComponentRegistry


class EscalationPolicy(Protocol):
    @property
    def name(self) -> str: ...

    def next_tier(self, settings: Settings, tier: str, input_tokens: int) -> TierConfig | None:
        """The tier to try after ``tier``, or None to stop."""
        ...


ESCALATIONS: ComponentRegistry[EscalationPolicy] = ComponentRegistry("escalation")
register_escalation = ESCALATIONS.register


def build_escalation(settings: Settings) -> EscalationPolicy:
    return ESCALATIONS.build(settings.routing.escalation, settings)


class NextTierConfig(NamedConfig):
    name: Literal["next-tier"] = "next-tier"


class SkipToTopConfig(NamedConfig):
    name: Literal["skip-to-top"] = "skip-to-top"


class StopConfig(NamedConfig):
    name: Literal["stop"] = "stop"


@dataclass(frozen=True)
class NextTier:
    """One tier up: the next tier above ``tier`` whose window holds the query."""

    name: str = "next-tier"

    def next_tier(self, settings: Settings, tier: str, input_tokens: int) -> TierConfig | None:
        return tier_for_escalation(settings, tier, input_tokens)


@dataclass(frozen=True)
class SkipToTop:
    """Straight to the strongest tier above ``tier`` that holds the query."""

    name: str = "skip-to-top"

    def next_tier(self, settings: Settings, tier: str, input_tokens: int) -> TierConfig | None:
        start = settings.tier_names.index(tier) + 1
        holding = [t for t in settings.tiers[start:] if fits(t, input_tokens)]
        return holding[-1] if holding else None


@dataclass(frozen=True)
class Stop:
    """Never escalate."""

    name: str = "stop"

    def next_tier(self, settings: Settings, tier: str, input_tokens: int) -> TierConfig | None:
        return None


register_escalation(NextTierConfig)(lambda _config, _settings: NextTier())
register_escalation(SkipToTopConfig)(lambda _config, _settings: SkipToTop())
register_escalation(StopConfig)(lambda _config, _settings: Stop())
