"""Evaluating a router on outcome files, never on what it was trained on. Pure.

A ``Trainer`` learns from examples and returns a ``Scorer``; the harness trains on one part of
the data and scores another (a split the trainer never saw, or each of k folds in turn), then
builds the curve from the held-out scores. The random router and the oracle are computed on
the same examples, so every report carries its two reference lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from routeq.evaluation.curve import Point, Summary, curve, oracle_scores, random_curve, summarise
from routeq.evaluation.folds import k_folds
from routeq.evaluation.outcomes import Example
from routeq.tokens import count_tokens


class Scorer(Protocol):
    def scores(self, examples: Sequence[Example]) -> list[float]:
        """One score per example: the higher, the more it wants the strong model."""
        ...


class Trainer(Protocol):
    @property
    def name(self) -> str: ...

    def train(self, examples: Sequence[Example], weak: str, strong: str) -> Scorer:
        """A scorer learned from ``examples`` (their outcomes on ``weak`` and ``strong``)."""
        ...


@dataclass(frozen=True)
class Evaluation:
    """A router's held-out curve, its numbers, and the score it gave each prompt."""

    name: str
    points: list[Point]
    summary: Summary
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptLength:
    """The simplest baseline: longer prompts to the strong model. Learns nothing."""

    name: str = "prompt-length"

    def train(self, examples: Sequence[Example], weak: str, strong: str) -> Scorer:
        return self

    def scores(self, examples: Sequence[Example]) -> list[float]:
        return [float(count_tokens(example.prompt)) for example in examples]


def _outcomes(
    examples: Sequence[Example], weak: str, strong: str
) -> tuple[list[float], list[float]]:
    return [e.score(weak) for e in examples], [e.score(strong) for e in examples]


def _evaluation(
    name: str, examples: Sequence[Example], weak: str, strong: str, scores: Sequence[float]
) -> Evaluation:
    weak_scores, strong_scores = _outcomes(examples, weak, strong)
    points = curve(weak_scores, strong_scores, scores)
    summary = summarise(points, sum(strong_scores) / len(strong_scores))
    return Evaluation(
        name, points, summary, {e.id: s for e, s in zip(examples, scores, strict=True)}
    )


def held_out(
    trainer: Trainer, train: Sequence[Example], test: Sequence[Example], weak: str, strong: str
) -> Evaluation:
    """Train on ``train``, measure on ``test``; the two must not share an id."""
    shared = {e.id for e in train} & {e.id for e in test}
    if shared:
        raise ValueError(
            f"{len(shared)} examples are in both the training and the evaluation data "
            f"(e.g. {sorted(shared)[0]!r}): a number measured on them would flatter the router"
        )
    scorer = trainer.train(train, weak, strong)
    return _evaluation(trainer.name, test, weak, strong, scorer.scores(test))


def cross_validated(
    trainer: Trainer, examples: Sequence[Example], weak: str, strong: str, folds: int, seed: int
) -> Evaluation:
    """Each fold scored by the router trained on the other folds; one curve over all of them."""
    scores: dict[str, float] = {}
    for train, test in k_folds(examples, [e.id for e in examples], folds, seed):
        if not test:
            continue
        scorer = trainer.train(train, weak, strong)
        scores.update(zip((e.id for e in test), scorer.scores(test), strict=True))
    ordered = [scores[e.id] for e in examples]
    return _evaluation(
        f"{trainer.name} ({folds}-fold, seed {seed})", examples, weak, strong, ordered
    )


def references(examples: Sequence[Example], weak: str, strong: str) -> list[Evaluation]:
    """The random router (exact average) and the oracle, on the same examples."""
    weak_scores, strong_scores = _outcomes(examples, weak, strong)
    strong_quality = sum(strong_scores) / len(strong_scores)
    rand = random_curve(weak_scores, strong_scores)
    oracle = oracle_scores(weak_scores, strong_scores)
    return [
        Evaluation("random", rand, summarise(rand, strong_quality)),
        _evaluation("oracle", examples, weak, strong, oracle),
    ]


def without_domain(examples: Sequence[Example], domain: str) -> list[Example]:
    """The examples outside ``domain`` (MMLU's high_school_mathematics, whose strong-model
    scores are a grading artefact, say)."""
    return [e for e in examples if e.domain != domain]
