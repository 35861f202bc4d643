"""A routing-policy plugin as a user would write one: one module, its config class, a factory.

Loaded by name through ``[routing] plugins = ["sample_plugin"]``; nothing in routeq is edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from routeq.config import ModelEndpoint, NamedConfig, Settings
from routeq.policies import Decision, Feature, ModelReply, Policy, QueryView, register_policy


class LengthThresholdConfig(NamedConfig):
    name: Literal["length-cutoff"] = "length-cutoff"
    max_short_chars: int = 40
    short_tier: str = "cheap"
    long_tier: str = "frontier"

    def problems(self, tier_names: list[str]) -> list[str]:
        return [
            f"unknown tier {tier!r}"
            for tier in (self.short_tier, self.long_tier)
            if tier not in tier_names
        ]


@dataclass(frozen=True)
class LengthThreshold:
    config: LengthThresholdConfig
    name: str = "length-cutoff"
    version: str = "v7-test"
    features: Sequence[Feature] = ()

    def decide(self, query: QueryView) -> Decision:
        short = len(query.text) <= self.config.max_short_chars
        return Decision(
            tier=self.config.short_tier if short else self.config.long_tier,
            reason=f"{len(query.text)} chars",
            score=len(query.text) / self.config.max_short_chars,
            details={"threshold": self.config.max_short_chars},
        )


@register_policy(LengthThresholdConfig)
def length_threshold(config: LengthThresholdConfig, settings: Settings) -> Policy:
    return LengthThreshold(config)


class AskTheSmallModelConfig(NamedConfig):
    """Route by a small model's one-word opinion: a feature that calls a model."""

    name: Literal["ask-the-small-model"] = "ask-the-small-model"
    classifier_tier: str = "cheap"


@dataclass(frozen=True)
class AskTheSmallModel:
    classifier: ModelEndpoint
    name: str = "ask-the-small-model"
    version: str = "prompt-1"

    @property
    def features(self) -> Sequence[Feature]:
        return [ModelReply("opinion", self.classifier, "Is this hard? {text}", max_tokens=8)]

    def decide(self, query: QueryView) -> Decision:
        opinion = str(query.features["opinion"])
        return Decision(tier="mid", reason="asked the small model", details={"chars": len(opinion)})


@register_policy(AskTheSmallModelConfig)
def ask_the_small_model(config: AskTheSmallModelConfig, settings: Settings) -> Policy:
    return AskTheSmallModel(settings.tier(config.classifier_tier))


class OffTheLadderConfig(NamedConfig):
    name: Literal["off-the-ladder"] = "off-the-ladder"


@dataclass(frozen=True)
class OffTheLadder:
    name: str = "off-the-ladder"
    version: str = "0"
    features: Sequence[Feature] = ()

    def decide(self, query: QueryView) -> Decision:
        return Decision(tier="gpt-17-ultra", reason="wishful thinking")


@register_policy(OffTheLadderConfig)
def off_the_ladder(config: OffTheLadderConfig, settings: Settings) -> Policy:
    return OffTheLadder()
