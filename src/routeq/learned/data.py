"""What a router trains on: query texts and, per label (a tier or a model), whether that label
answered each well. Labels missing for a query (a tier never called on it) are NaN, so each
per-label model learns only from the queries that label was observed on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from routeq.evaluation.outcomes import Example


@dataclass(frozen=True)
class TrainingSet:
    texts: list[str]
    labels: tuple[str, ...]
    outcomes: NDArray[np.float64]  # len(texts) x len(labels), scores in 0..1, NaN if unknown

    def __post_init__(self) -> None:
        if self.outcomes.shape != (len(self.texts), len(self.labels)):
            raise ValueError("outcomes must be one row per text and one column per label")

    def observed(self, label: int) -> NDArray[np.bool_]:
        observed: NDArray[np.bool_] = ~np.isnan(self.outcomes[:, label])
        return observed


def from_examples(
    examples: Sequence[Example], labels: Sequence[str], pass_score: float | None = None
) -> TrainingSet:
    """The training set of ``examples`` for ``labels`` (model or tier names in the file).
    ``pass_score``: grades at or above it count as 1, below as 0 (a ledger export keeps the
    judge's grade out of 10 as a score; its verdict was ``judge.pass_threshold / 10``)."""
    outcomes = np.full((len(examples), len(labels)), np.nan)
    for row, example in enumerate(examples):
        for column, label in enumerate(labels):
            outcome = example.outcomes.get(label)
            if outcome is not None:
                score = outcome.score
                outcomes[row, column] = score if pass_score is None else passed(score, pass_score)
    for column, label in enumerate(labels):
        if np.isnan(outcomes[:, column]).all():
            raise ValueError(f"no example has an outcome of {label!r}")
    return TrainingSet([e.prompt for e in examples], tuple(labels), outcomes)


def passed(score: float, pass_score: float) -> float:
    """1.0 when a graded ``score`` reaches ``pass_score`` (7/10 against a threshold of 0.7, read
    back from a float), else 0.0."""
    return float(score >= pass_score - 1e-9)
