"""The cascade verifier: after the cheap tier answers, is its answer good enough to keep?

A logistic regression over what the answer gives away (``routeq.judges.answer_features``:
unfinished text, arithmetic slips, implausible finals), the answer's words (TF-IDF: hedges and
approximations are telling) and the question's shape predicts the
probability that the cheap tier's answer is right. Below a threshold the query escalates. It
is trained on outcome files that carry the cheap model's responses (GSM8K's do) or on the
ledger's judged answers.

Measured as a router, the verifier's score (one minus that probability) orders queries by how
much they need the strong tier *after* seeing the cheap answer, so its curve is the cascade's:
quality against the share of queries that end on the strong tier. A cascade pays the cheap
call on every query; combined with a pre-router (``CombinedTrainer``), the queries the
pre-router is surest about go straight to the strong tier and skip it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.stats import rankdata

from routeq.config import Settings
from routeq.errors import ConfigError
from routeq.evaluation.harness import Scorer, Trainer
from routeq.evaluation.outcomes import Example
from routeq.judges.answer_features import NAMES as ANSWER_FEATURES
from routeq.judges.answer_features import answer_features
from routeq.learned.artifact import Artifact, ArtifactError, load
from routeq.learned.text import SHAPE_NAMES, Tfidf, fit_scale, shape, standardise

KIND = "cascade-verifier"


def _raw(questions: Sequence[str], answers: Sequence[str]) -> NDArray[np.float64]:
    rows = [answer_features(q, a) + shape(q) for q, a in zip(questions, answers, strict=True)]
    return np.array(rows, dtype=np.float64).reshape(-1, len(ANSWER_FEATURES) + len(SHAPE_NAMES))


def _features(
    questions: Sequence[str],
    answers: Sequence[str],
    mean: NDArray[np.float64],
    scale: NDArray[np.float64],
    words: Tfidf,
) -> sparse.csr_matrix:
    dense = sparse.csr_matrix(standardise(_raw(questions, answers), mean, scale))
    return sparse.hstack([dense, words.transform(answers)], format="csr")


@dataclass(frozen=True)
class Verifier:
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    words: Tfidf
    coef: NDArray[np.float64]
    intercept: float

    def p_good(self, questions: Sequence[str], answers: Sequence[str]) -> NDArray[np.float64]:
        """The probability that each answer is good."""
        x = _features(questions, answers, self.mean, self.scale, self.words)
        logits = np.asarray(x @ self.coef) + self.intercept
        result: NDArray[np.float64] = 1 / (1 + np.exp(-np.clip(logits, -30, 30)))
        return result


def train_verifier(
    questions: Sequence[str], answers: Sequence[str], good: Sequence[float], *, c: float = 1.0
) -> Artifact:
    from sklearn.linear_model import LogisticRegression

    mean, scale = fit_scale(_raw(questions, answers))
    y = (np.asarray(good) >= 0.5).astype(int)
    if len(set(y.tolist())) < 2:
        raise ValueError("the cheap answers are all right or all wrong: nothing to verify")
    words = Tfidf.fit(answers, min_df=3)
    features = _features(questions, answers, mean, scale, words)
    model = LogisticRegression(C=c, max_iter=3000).fit(features, y)
    arrays = {
        "mean": mean,
        "scale": scale,
        "coef": model.coef_[0],
        "intercept": np.array([model.intercept_[0]]),
        **words.arrays("words_"),
    }
    metadata = {
        "features": [*ANSWER_FEATURES, *SHAPE_NAMES],
        "examples": len(questions),
        "base_rate": float(y.mean()),
        "c": c,
    }
    return Artifact(KIND, ("good",), arrays, metadata)


def load_verifier(artifact: Artifact) -> Verifier:
    if artifact.metadata.get("features") != [*ANSWER_FEATURES, *SHAPE_NAMES]:
        raise ArtifactError(
            f"{KIND} artifact {artifact.version} was trained on other features than this "
            "routeq computes: train it again"
        )
    words = Tfidf.from_arrays(artifact.arrays, "words_")
    coef = artifact.array("coef")
    if coef.shape != (len(ANSWER_FEATURES) + len(SHAPE_NAMES) + len(words.vocabulary),):
        raise ArtifactError(f"{KIND} artifact {artifact.version}: coefficients misshapen")
    return Verifier(
        artifact.array("mean"),
        artifact.array("scale"),
        words,
        coef,
        float(artifact.array("intercept")[0]),
    )


def _responses(examples: Sequence[Example], weak: str) -> list[str]:
    missing = sum(1 for e in examples if not e.outcomes[weak].response)
    if missing == len(examples):
        raise ValueError(
            f"no example carries {weak}'s response: a cascade verifier reads the cheap answer"
        )
    return [e.outcomes[weak].response or "" for e in examples]


@dataclass(frozen=True)
class VerifierScorer:
    verifier: Verifier
    weak: str

    def scores(self, examples: Sequence[Example]) -> list[float]:
        p_good = self.verifier.p_good([e.prompt for e in examples], _responses(examples, self.weak))
        return [float(1 - p) for p in p_good]


@dataclass(frozen=True)
class CascadeTrainer:
    """The cascade as a router: escalate the answers the verifier trusts least."""

    c: float = 1.0
    name: str = "cascade"

    def train(self, examples: Sequence[Example], weak: str, strong: str) -> Scorer:
        artifact = train_verifier(
            [e.prompt for e in examples],
            _responses(examples, weak),
            [e.score(weak) for e in examples],
            c=self.c,
        )
        return VerifierScorer(load_verifier(artifact), weak)


@dataclass(frozen=True)
class _Combined:
    pre: Scorer
    verifier: Scorer
    pre_weight: float

    def scores(self, examples: Sequence[Example]) -> list[float]:
        pre = rankdata(self.pre.scores(examples)) / len(examples)
        post = rankdata(self.verifier.scores(examples)) / len(examples)
        return [float(s) for s in self.pre_weight * pre + (1 - self.pre_weight) * post]


@dataclass(frozen=True)
class CombinedTrainer:
    """A pre-router and the cascade together: a query's need for the strong tier is a blend of
    the pre-router's rank (before any answer) and the verifier's (after the cheap one)."""

    pre: Trainer
    pre_weight: float = 0.3

    @property
    def name(self) -> str:
        return f"{self.pre.name} + cascade"

    def train(self, examples: Sequence[Example], weak: str, strong: str) -> Scorer:
        return _Combined(
            self.pre.train(examples, weak, strong),
            CascadeTrainer().train(examples, weak, strong),
            self.pre_weight,
        )


def is_cascade(trainer: Trainer) -> bool:
    """Whether ``trainer`` measures a cascade, whose queries all pay the cheap call first
    (``routeq.evaluation.cost.cascaded`` prices them so)."""
    return isinstance(trainer, CascadeTrainer | CombinedTrainer)


@dataclass(frozen=True)
class TierVerifier:
    """A loaded verifier for the judge step: the tiers it reads and its threshold."""

    verifier: Verifier
    tiers: frozenset[str]
    min_p_good: float

    def applies_to(self, tier: str) -> bool:
        return tier in self.tiers

    def p_good(self, question: str, answer: str) -> float:
        return float(self.verifier.p_good([question], [answer])[0])


def verifier_at_start(settings: Settings) -> TierVerifier | None:
    """The configured ``[judge.verifier]``, loaded and checked against the ladder (raises
    ``ConfigError``), or None when there is none."""
    config = settings.judge.verifier
    if config is None:
        return None
    tiers = config.tiers if config.tiers is not None else settings.tier_names[:-1]
    unknown = sorted(set(tiers) - set(settings.tier_names))
    if unknown:
        raise ConfigError(f"judge.verifier.tiers: unknown tier {unknown[0]!r}")
    loaded = load(config.artifact, KIND)
    return TierVerifier(load_verifier(loaded), frozenset(tiers), config.min_p_good)
