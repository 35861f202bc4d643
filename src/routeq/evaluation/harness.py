"""Evaluating a router on outcome files, never on what it was trained on. Pure.

A ``Trainer`` learns from examples and returns a ``Scorer``; the harness trains on one part of
the data and scores another (a split the trainer never saw, or each of k folds in turn), then
builds the curve from the held-out scores. The random router and the oracle are computed on
the same examples, so every report carries its two reference lines.

Each entry point takes the examples' costs (``routeq.evaluation.cost.example_costs``, keyed by
id) optionally: with them, every curve point and summary also says what routing that way costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from routeq.evaluation.cost import ExampleCost
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


Costs = Mapping[str, ExampleCost]
"""Each example's cost on the weak and on the strong model, by example id."""


def _cost_columns(
    examples: Sequence[Example], costs: Costs | None
) -> tuple[list[float] | None, list[float] | None]:
    """The examples' weak and strong costs in their order, for ``curve`` and ``random_curve``
    (floats: the curve's arithmetic is float, and USD to ten decimals fits a double)."""
    if costs is None:
        return None, None
    missing = [e.id for e in examples if e.id not in costs]
    if missing:
        raise ValueError(f"no cost for {len(missing)} examples (e.g. {missing[0]!r})")
    return [float(costs[e.id].weak) for e in examples], [
        float(costs[e.id].strong) for e in examples
    ]


def _evaluation(
    name: str,
    examples: Sequence[Example],
    weak: str,
    strong: str,
    scores: Sequence[float],
    costs: Costs | None = None,
) -> Evaluation:
    weak_scores, strong_scores = _outcomes(examples, weak, strong)
    weak_cost, strong_cost = _cost_columns(examples, costs)
    points = curve(weak_scores, strong_scores, scores, weak_cost=weak_cost, strong_cost=strong_cost)
    baseline = None
    if costs is not None and all(costs[e.id].strong_alone is not None for e in examples):
        alone = sum(float(costs[e.id].strong_alone or 0) for e in examples)
        baseline = 1000 * alone / len(examples)
    summary = summarise(points, sum(strong_scores) / len(strong_scores), baseline)
    return Evaluation(
        name, points, summary, {e.id: s for e, s in zip(examples, scores, strict=True)}
    )


def held_out(
    trainer: Trainer,
    train: Sequence[Example],
    test: Sequence[Example],
    weak: str,
    strong: str,
    costs: Costs | None = None,
) -> Evaluation:
    """Train on ``train``, measure on ``test``; the two must not share an id."""
    shared = {e.id for e in train} & {e.id for e in test}
    if shared:
        raise ValueError(
            f"{len(shared)} examples are in both the training and the evaluation data "
            f"(e.g. {sorted(shared)[0]!r}): a number measured on them would flatter the router"
        )
    scorer = trainer.train(train, weak, strong)
    return _evaluation(trainer.name, test, weak, strong, scorer.scores(test), costs)


def cross_validated(
    trainer: Trainer,
    examples: Sequence[Example],
    weak: str,
    strong: str,
    folds: int,
    seed: int,
    costs: Costs | None = None,
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
        f"{trainer.name} ({folds}-fold, seed {seed})", examples, weak, strong, ordered, costs
    )


def references(
    examples: Sequence[Example], weak: str, strong: str, costs: Costs | None = None
) -> list[Evaluation]:
    """The random router (exact average) and the oracle, on the same examples."""
    weak_scores, strong_scores = _outcomes(examples, weak, strong)
    strong_quality = sum(strong_scores) / len(strong_scores)
    weak_cost, strong_cost = _cost_columns(examples, costs)
    rand = random_curve(weak_scores, strong_scores, weak_cost=weak_cost, strong_cost=strong_cost)
    oracle = oracle_scores(weak_scores, strong_scores)
    return [
        Evaluation("random", rand, summarise(rand, strong_quality)),
        _evaluation("oracle", examples, weak, strong, oracle, costs),
    ]


def without_domain(examples: Sequence[Example], domain: str) -> list[Example]:
    """The examples outside ``domain`` (MMLU's high_school_mathematics, whose strong-model
    scores are a grading artefact, say)."""
    return [e for e in examples if e.domain != domain]
