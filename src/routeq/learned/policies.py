"""The trained routing policies: ``expected-gain``, ``knn`` and ``matrix-factorisation``.

Each reads a trained artifact (``routeq train`` writes one), predicts every mapped tier's
probability of a good answer, and picks the tier with the best predicted quality minus
``cost_weight`` times its relative cost (``routeq.learned.decide``). The artifact is loaded,
and checked against the ladder, when the policy is built, that is when a worker starts: a
missing, corrupt or incompatible file stops the worker with the reason, before any query is
routed with it.

The route hop records the policy's name, its version (the artifact's hash and the cost weight:
a recalibration is a new version), its score (the predicted gain of the top mapped tier over
the cheapest, per unit of cost) and each tier's predicted quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from routeq.config import Settings
from routeq.errors import ConfigError
from routeq.learned.artifact import load
from routeq.learned.configs import LearnedPolicyConfig
from routeq.learned.decide import choose, relative_costs, routing_score
from routeq.learned.embeddings import Embedder, shared_embedder
from routeq.learned.models import QualityModel, load_model
from routeq.policies.base import Decision, QueryView
from routeq.policies.features import Feature


@dataclass(frozen=True)
class TierMap:
    """The tiers a trained policy chooses among (ladder order) and each one's label column."""

    tiers: tuple[str, ...]
    columns: tuple[int, ...]


def map_tiers(
    labels: Sequence[str], mapping: dict[str, str], tier_names: Sequence[str], source: str
) -> TierMap:
    """Which of the artifact's labels stands for which tier, cheapest tier first."""
    if not mapping:
        mapping = {label: label for label in labels if label in tier_names}
        if len(mapping) < 2:
            raise ConfigError(
                f"{source} predicts {', '.join(labels)}, of which fewer than two are tiers of "
                'this ladder: map them with [routing.policy] tiers = {<tier> = "<label>"}'
            )
    missing = sorted(label for label in mapping.values() if label not in labels)
    if missing:
        raise ConfigError(
            f"{source} predicts {', '.join(labels)}; it has no {', '.join(missing)} "
            "named in [routing.policy] tiers"
        )
    ordered = [t for t in tier_names if t in mapping]
    if len(ordered) < 2:
        raise ConfigError(f"{source}: a trained policy needs at least two tiers to choose from")
    return TierMap(tuple(ordered), tuple(labels.index(mapping[t]) for t in ordered))


class LearnedPolicy:
    """A trained quality model deciding per query; pure once built (the embedding model runs
    locally)."""

    features: Sequence[Feature] = ()

    def __init__(
        self,
        name: str,
        model: QualityModel,
        artifact_version: str,
        tier_map: TierMap,
        costs: NDArray[np.float64],
        cost_weight: float,
        embedder: Embedder | None,
    ) -> None:
        self.name = name
        self.version = f"{artifact_version}-w{cost_weight:g}"
        self._model = model
        self._tiers = tier_map
        self._costs = costs
        self._cost_weight = cost_weight
        self._embedder = embedder

    @property
    def tiers(self) -> tuple[str, ...]:
        """The tiers it chooses among, cheapest first."""
        return self._tiers.tiers

    @property
    def relative_costs(self) -> NDArray[np.float64]:
        """Each of those tiers' relative cost (the most expensive one's is 1)."""
        return self._costs

    @property
    def cost_weight(self) -> float:
        return self._cost_weight

    def quality(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Predicted quality of each mapped tier (cheapest first) for each text."""
        embeddings = None
        if self._model.needs_embeddings:
            assert self._embedder is not None
            embeddings = self._embedder.embed(texts)
        return self._model.quality(texts, embeddings)[:, list(self._tiers.columns)]

    def decide_many(self, queries: Sequence[QueryView]) -> list[Decision]:
        """Decisions for a batch (one embedding and one matrix product for all)."""
        quality = self.quality([q.text for q in queries])
        chosen = choose(quality, self._costs, self._cost_weight)
        scores = routing_score(quality, self._costs)
        return [
            self._decision(quality[row], int(chosen[row]), float(scores[row]))
            for row in range(len(queries))
        ]

    def decide(self, query: QueryView) -> Decision:
        return self.decide_many([query])[0]

    def _decision(self, quality: NDArray[np.float64], chosen: int, score: float) -> Decision:
        tier = self._tiers.tiers[chosen]
        cheapest = self._tiers.tiers[0]
        gain = float(quality[chosen] - quality[0])
        reason = (
            f"predicted quality {quality[chosen]:.2f} on {tier}"
            + (f" ({gain:+.2f} over {cheapest})" if chosen else "")
            + f" is worth its cost at weight {self._cost_weight:g}"
        )
        return Decision(
            tier=tier,
            reason=reason,
            score=round(score, 6),
            details={
                "quality": {
                    t: round(float(q), 4) for t, q in zip(self.tiers, quality, strict=True)
                },
                "cost_weight": self._cost_weight,
            },
        )


def build_learned(config: LearnedPolicyConfig, settings: Settings) -> LearnedPolicy:
    """Load the artifact and check it against the ladder (raises ConfigError)."""
    artifact = load(config.artifact, config.name)
    model = load_model(artifact)
    source = f"{config.name} artifact {config.artifact}"
    tier_map = map_tiers(artifact.labels, config.tiers, settings.tier_names, source)
    by_name = {tier.name: tier for tier in settings.tiers}
    costs = relative_costs([by_name[t] for t in tier_map.tiers])
    embedder = shared_embedder() if model.needs_embeddings else None
    if embedder is not None:
        # Load the embedding model now (a worker builds its policy before forking, so its
        # children share the weights, and a missing model stops it at start, not at a route).
        embedder.embed(["routeq warm-up"])
    return LearnedPolicy(
        config.name, model, artifact.version, tier_map, costs, config.cost_weight, embedder
    )
