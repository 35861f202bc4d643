"""The trained policies' config sections, registered with the policy registry.

This module imports nothing heavy: the settings import it when they load, on every install,
so that ``[routing.policy] name = "expected-gain"`` validates. The models themselves (NumPy,
the embedding model) load only when a policy is built, from ``routeq.learned.policies``; an
install without the ``learn`` extra gets a clear error then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from routeq.config import NamedConfig, Settings
from routeq.errors import ConfigError
from routeq.policies.base import Policy
from routeq.policies.registry import register_policy


class LearnedPolicyConfig(NamedConfig):
    """What every trained policy's section holds."""

    artifact: Path = Field(description="the trained model (routeq train --out)")
    cost_weight: float = Field(
        default=0.1,
        ge=0,
        description="how much quality a unit of relative cost is worth (routeq calibrate sets "
        "it): higher sends fewer queries to expensive tiers",
    )
    tiers: dict[str, str] = Field(
        default_factory=dict,
        description="tier -> the label (model or tier name) the artifact predicts for it; "
        "empty: the artifact's labels that are tier names",
    )

    def problems(self, tier_names: list[str]) -> list[str]:
        unknown = sorted(set(self.tiers) - set(tier_names))
        return [f"{self.name}: unknown tier {t!r} in tiers" for t in unknown]


class ExpectedGainConfig(LearnedPolicyConfig):
    name: Literal["expected-gain"] = "expected-gain"


class NearestNeighboursConfig(LearnedPolicyConfig):
    name: Literal["knn"] = "knn"


class MatrixFactorisationConfig(LearnedPolicyConfig):
    name: Literal["matrix-factorisation"] = "matrix-factorisation"


def _build(config: LearnedPolicyConfig, settings: Settings) -> Policy:
    try:
        from routeq.learned.policies import build_learned
    except ImportError as error:
        raise ConfigError(
            f"the {config.name} policy needs routeq's learn extra ({error.name} is missing): "
            "pip install 'routeq[learn]'"
        ) from None
    return build_learned(config, settings)


@register_policy(ExpectedGainConfig)
def expected_gain(config: ExpectedGainConfig, settings: Settings) -> Policy:
    return _build(config, settings)


@register_policy(NearestNeighboursConfig)
def nearest_neighbours(config: NearestNeighboursConfig, settings: Settings) -> Policy:
    return _build(config, settings)


@register_policy(MatrixFactorisationConfig)
def matrix_factorisation(config: MatrixFactorisationConfig, settings: Settings) -> Policy:
    return _build(config, settings)
