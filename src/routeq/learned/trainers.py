"""Trained routers as the evaluation harness's trainers (``routeq.evaluation.harness``): each
fold trains a fresh model on the other folds' examples and scores the held-out ones by the
predicted gain of the strong model over the weak one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeq.evaluation.harness import Scorer
from routeq.evaluation.outcomes import Example
from routeq.learned.data import from_examples
from routeq.learned.embeddings import Embedder
from routeq.learned.models import QualityModel, load_model, needs_embeddings, train


@dataclass(frozen=True)
class ModelScorer:
    model: QualityModel
    embedder: Embedder | None

    def scores(self, examples: Sequence[Example]) -> list[float]:
        quality = predict(self.model, [e.prompt for e in examples], self.embedder)
        return [float(s) for s in quality[:, -1] - quality[:, 0]]


def predict(
    model: QualityModel, texts: Sequence[str], embedder: Embedder | None
) -> NDArray[np.float64]:
    """The model's quality predictions, embedding the texts first if it reads embeddings."""
    embeddings = None
    if model.needs_embeddings:
        if embedder is None:
            raise ValueError("this model reads sentence embeddings: give it an embedder")
        embeddings = embedder.embed(texts)
    return model.quality(texts, embeddings)


@dataclass(frozen=True)
class LearnedTrainer:
    """Train a ``kind`` router with ``options`` on the weak and strong models' outcomes."""

    kind: str
    embedder: Embedder | None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.kind

    def train(self, examples: Sequence[Example], weak: str, strong: str) -> Scorer:
        data = from_examples(examples, [weak, strong])
        embeddings = None
        if needs_embeddings(self.kind, self.options):
            if self.embedder is None:
                raise ValueError(f"{self.kind} learns from sentence embeddings: give it one")
            embeddings = self.embedder.embed(data.texts)
        artifact = train(self.kind, data, embeddings, self.options)
        return ModelScorer(load_model(artifact), self.embedder)
