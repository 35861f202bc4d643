"""The trained routers: each predicts, per label (tier or model), the probability that it
answers a query well. ``train_*`` fits one on a ``TrainingSet`` and returns its ``Artifact``;
``load_model`` turns an artifact back into a model. Training uses scikit-learn; prediction uses
NumPy and SciPy only, from the artifact's arrays.

- ``expected-gain``: one logistic regression per label over word TF-IDF, the prompt's shape and
  (optionally) its sentence embedding. Modelling every tier, not only the cheap one's failures,
  lets the router tell "hard for both" (no point paying) from "hard only for the cheap one".
- ``knn``: the labelled examples nearest in embedding space vote, shrunk toward the label's
  base rate when few are near.
- ``matrix-factorisation``: RouteLLM-style: a learned projection of the query embedding and a
  vector per label; the probability is the logistic of their dot product plus a bias. One model
  for any number of tiers, sharing what it learns about queries across them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from routeq.learned.artifact import Artifact, ArtifactError
from routeq.learned.data import TrainingSet
from routeq.learned.embeddings import DIMENSIONS
from routeq.learned.embeddings import MODEL_NAME as EMBEDDING_MODEL
from routeq.learned.text import SHAPE_NAMES, Shape, Tfidf

KINDS = ("expected-gain", "knn", "matrix-factorisation")
BLOCKS = ("words", "shape", "embedding")
# The expected-gain default leaves the embedding out: it measured no better held out on the
# shared data (GSM8K a point up, MMLU a point down) and costs most of a decision's time
# (bench/routing.md). `--option blocks=words,shape,embedding` adds it.
DEFAULT_BLOCKS = ("words", "shape")


def needs_embeddings(kind: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether a router of ``kind`` with ``options`` learns from sentence embeddings."""
    if kind != "expected-gain":
        return True
    return "embedding" in (options or {}).get("blocks", DEFAULT_BLOCKS)


class QualityModel(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def needs_embeddings(self) -> bool: ...

    def quality(
        self, texts: Sequence[str], embeddings: NDArray[np.float32] | None = None
    ) -> NDArray[np.float64]:
        """Predicted P(good answer): one row per text, one column per label."""
        ...


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
    return result


def _binary(outcomes: NDArray[np.float64]) -> NDArray[np.int64]:
    return (outcomes >= 0.5).astype(np.int64)


def _metadata(kind: str, data: TrainingSet, **more: Any) -> dict[str, Any]:
    return {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "examples": len(data.texts),
        "observed": {label: int(data.observed(i).sum()) for i, label in enumerate(data.labels)},
        "base_rates": {
            label: float(np.nanmean(data.outcomes[:, i])) for i, label in enumerate(data.labels)
        },
        **more,
    }


# --- expected gain: logistic regressions over text features -------------------------------


@dataclass(frozen=True)
class ExpectedGain:
    labels: tuple[str, ...]
    blocks: tuple[str, ...]
    tfidf: Tfidf | None
    shape: Shape | None
    coef: NDArray[np.float64]  # labels x features
    intercept: NDArray[np.float64]

    @property
    def needs_embeddings(self) -> bool:
        return "embedding" in self.blocks

    def quality(
        self, texts: Sequence[str], embeddings: NDArray[np.float32] | None = None
    ) -> NDArray[np.float64]:
        features = _features(self.blocks, self.tfidf, self.shape, texts, embeddings)
        logits = np.asarray(features @ self.coef.T) + self.intercept
        return _sigmoid(logits)


def _features(
    blocks: Sequence[str],
    tfidf: Tfidf | None,
    shape: Shape | None,
    texts: Sequence[str],
    embeddings: NDArray[np.float32] | None,
) -> sparse.csr_matrix:
    parts: list[Any] = []
    if "words" in blocks:
        assert tfidf is not None
        parts.append(tfidf.transform(texts))
    if "shape" in blocks:
        assert shape is not None
        parts.append(sparse.csr_matrix(shape.transform(texts)))
    if "embedding" in blocks:
        if embeddings is None:
            raise ValueError("this model reads sentence embeddings: pass them")
        parts.append(sparse.csr_matrix(embeddings.astype(np.float64)))
    return sparse.hstack(parts, format="csr")


def train_expected_gain(
    data: TrainingSet,
    embeddings: NDArray[np.float32] | None = None,
    *,
    blocks: Sequence[str] = DEFAULT_BLOCKS,
    c: float = 1.0,
) -> Artifact:
    """One logistic regression per label, each on the examples that label was observed on."""
    from sklearn.linear_model import LogisticRegression

    unknown = set(blocks) - set(BLOCKS)
    if unknown or not blocks:
        raise ValueError(f"feature blocks must be some of {', '.join(BLOCKS)}")
    tfidf = Tfidf.fit(data.texts) if "words" in blocks else None
    shape = Shape.fit(data.texts) if "shape" in blocks else None
    features = _features(blocks, tfidf, shape, data.texts, embeddings)
    coefs, intercepts = [], []
    for column, _label in enumerate(data.labels):
        observed = data.observed(column)
        y = _binary(data.outcomes[observed, column])
        if len(set(y.tolist())) < 2:  # one class only: the base rate is all there is to learn
            coefs.append(np.zeros(features.shape[1]))
            rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
            intercepts.append(np.log(rate / (1 - rate)))
            continue
        model = LogisticRegression(C=c, max_iter=2000).fit(features[observed], y)
        coefs.append(model.coef_[0])
        intercepts.append(float(model.intercept_[0]))
    arrays: dict[str, NDArray[Any]] = {
        "coef": np.vstack(coefs),
        "intercept": np.array(intercepts),
    }
    if tfidf is not None:
        arrays.update(tfidf.arrays("tfidf_"))
    if shape is not None:
        arrays.update(shape.arrays("shape_"))
    metadata = _metadata(
        "expected-gain",
        data,
        blocks=list(blocks),
        c=c,
        shape_features=list(SHAPE_NAMES),
        embedding_model=EMBEDDING_MODEL if "embedding" in blocks else None,
    )
    return Artifact("expected-gain", data.labels, arrays, metadata)


def _load_expected_gain(artifact: Artifact) -> ExpectedGain:
    blocks = tuple(artifact.metadata.get("blocks", ()))
    if not blocks or set(blocks) - set(BLOCKS):
        raise ArtifactError(f"expected-gain artifact {artifact.version} names no known features")
    if "shape" in blocks and artifact.metadata.get("shape_features") != list(SHAPE_NAMES):
        raise ArtifactError(
            f"expected-gain artifact {artifact.version} was trained on other shape features "
            "than this routeq computes: train it again"
        )
    _check_embedding_model(artifact, "embedding" in blocks)
    tfidf = Tfidf.from_arrays(artifact.arrays, "tfidf_") if "words" in blocks else None
    shape = Shape.from_arrays(artifact.arrays, "shape_") if "shape" in blocks else None
    coef = artifact.array("coef")
    width = (
        (len(tfidf.vocabulary) if tfidf else 0)
        + (len(SHAPE_NAMES) if shape else 0)
        + (DIMENSIONS if "embedding" in blocks else 0)
    )
    if coef.shape != (len(artifact.labels), width):
        raise ArtifactError(f"expected-gain artifact {artifact.version}: coefficients misshapen")
    return ExpectedGain(artifact.labels, blocks, tfidf, shape, coef, artifact.array("intercept"))


def _check_embedding_model(artifact: Artifact, uses_embeddings: bool) -> None:
    if uses_embeddings and artifact.metadata.get("embedding_model") != EMBEDDING_MODEL:
        raise ArtifactError(
            f"{artifact.kind} artifact {artifact.version} was trained on embeddings of "
            f"{artifact.metadata.get('embedding_model')!r}; this routeq computes "
            f"{EMBEDDING_MODEL!r}: train it again"
        )


# --- nearest neighbours in embedding space ---------------------------------------------------


@dataclass(frozen=True)
class NearestNeighbours:
    labels: tuple[str, ...]
    vectors: NDArray[np.float32]  # examples x dimensions, unit length
    outcomes: NDArray[np.float64]  # examples x labels, NaN unknown
    k: int
    prior_weight: float
    base_rates: NDArray[np.float64]

    needs_embeddings = True

    def quality(
        self, texts: Sequence[str], embeddings: NDArray[np.float32] | None = None
    ) -> NDArray[np.float64]:
        if embeddings is None:
            raise ValueError("nearest neighbours need the query embeddings")
        similarity = embeddings.astype(np.float32) @ self.vectors.T
        k = min(self.k, self.vectors.shape[0])
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 0.0) + 1e-6
        result = np.empty((len(texts), len(self.labels)))
        for column in range(len(self.labels)):
            votes = self.outcomes[nearest, column]
            known = ~np.isnan(votes)
            w = np.where(known, weights, 0.0)
            total = (np.nan_to_num(votes) * w).sum(axis=1)
            result[:, column] = (total + self.prior_weight * self.base_rates[column]) / (
                w.sum(axis=1) + self.prior_weight
            )
        return result


def train_knn(
    data: TrainingSet, embeddings: NDArray[np.float32], *, k: int = 50, prior_weight: float = 2.0
) -> Artifact:
    """Keep the labelled examples' embeddings and outcomes: nothing else to fit."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if prior_weight <= 0:
        raise ValueError("prior_weight must be above 0 (it keeps unlabelled neighbourhoods finite)")
    arrays: dict[str, NDArray[Any]] = {
        "vectors": embeddings.astype(np.float16),  # half the size; cosine barely moves
        "outcomes": data.outcomes.astype(np.float32),
    }
    metadata = _metadata(
        "knn", data, k=k, prior_weight=prior_weight, embedding_model=EMBEDDING_MODEL
    )
    return Artifact("knn", data.labels, arrays, metadata)


def _load_knn(artifact: Artifact) -> NearestNeighbours:
    _check_embedding_model(artifact, True)
    vectors = artifact.array("vectors").astype(np.float32)
    outcomes = artifact.array("outcomes").astype(np.float64)
    if (
        vectors.ndim != 2
        or vectors.shape[1] != DIMENSIONS
        or outcomes.shape
        != (
            vectors.shape[0],
            len(artifact.labels),
        )
    ):
        raise ArtifactError(f"knn artifact {artifact.version}: arrays misshapen")
    return NearestNeighbours(
        artifact.labels,
        vectors,
        outcomes,
        int(artifact.metadata.get("k", 50)),
        _positive(float(artifact.metadata.get("prior_weight", 2.0)), artifact),
        np.nan_to_num(np.nanmean(outcomes, axis=0), nan=0.5),
    )


def _positive(prior_weight: float, artifact: Artifact) -> float:
    if not prior_weight > 0:
        raise ArtifactError(f"knn artifact {artifact.version}: prior_weight must be above 0")
    return prior_weight


# --- matrix factorisation ----------------------------------------------------------------


@dataclass(frozen=True)
class MatrixFactorisation:
    labels: tuple[str, ...]
    projection: NDArray[np.float64]  # dimensions x rank
    label_vectors: NDArray[np.float64]  # labels x rank
    bias: NDArray[np.float64]

    needs_embeddings = True

    def quality(
        self, texts: Sequence[str], embeddings: NDArray[np.float32] | None = None
    ) -> NDArray[np.float64]:
        if embeddings is None:
            raise ValueError("matrix factorisation needs the query embeddings")
        queries = embeddings.astype(np.float64) @ self.projection
        return _sigmoid(queries @ self.label_vectors.T + self.bias)


def train_matrix_factorisation(
    data: TrainingSet,
    embeddings: NDArray[np.float32],
    *,
    rank: int = 16,
    epochs: int = 300,
    learning_rate: float = 0.01,
    l2: float = 1e-3,
    seed: int = 0,
) -> Artifact:
    """Fit the projection, label vectors and biases by full-batch Adam on the logistic loss
    of the observed (query, label) outcomes, with an L2 penalty. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    x = embeddings.astype(np.float64)
    mask = ~np.isnan(data.outcomes)
    y = np.nan_to_num(data.outcomes)
    n_labels = len(data.labels)
    rates = np.clip(np.nanmean(data.outcomes, axis=0), 1e-3, 1 - 1e-3)
    params = {
        "projection": rng.normal(0, 1 / np.sqrt(x.shape[1]), (x.shape[1], rank)),
        "label_vectors": rng.normal(0, 0.1, (n_labels, rank)),
        "bias": np.log(rates / (1 - rates)),
    }
    moments = {name: (np.zeros_like(p), np.zeros_like(p)) for name, p in params.items()}
    count = max(int(mask.sum()), 1)
    for step in range(1, epochs + 1):
        queries = x @ params["projection"]
        logits = queries @ params["label_vectors"].T + params["bias"]
        error = (_sigmoid(logits) - y) * mask / count  # d(loss)/d(logits)
        grads = {
            "label_vectors": error.T @ queries + l2 * params["label_vectors"],
            "projection": x.T @ (error @ params["label_vectors"]) + l2 * params["projection"],
            "bias": error.sum(axis=0),
        }
        for name, grad in grads.items():
            first, second = moments[name]
            first[:] = 0.9 * first + 0.1 * grad
            second[:] = 0.999 * second + 0.001 * grad * grad
            corrected = first / (1 - 0.9**step)
            params[name] -= learning_rate * corrected / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    metadata = _metadata(
        "matrix-factorisation",
        data,
        rank=rank,
        epochs=epochs,
        learning_rate=learning_rate,
        l2=l2,
        seed=seed,
        embedding_model=EMBEDDING_MODEL,
    )
    return Artifact("matrix-factorisation", data.labels, params, metadata)


def _load_matrix_factorisation(artifact: Artifact) -> MatrixFactorisation:
    _check_embedding_model(artifact, True)
    projection = artifact.array("projection")
    vectors = artifact.array("label_vectors")
    bias = artifact.array("bias")
    if (
        projection.ndim != 2
        or projection.shape[0] != DIMENSIONS
        or vectors.shape != (len(artifact.labels), projection.shape[1])
        or bias.shape != (len(artifact.labels),)
    ):
        raise ArtifactError(f"matrix-factorisation artifact {artifact.version}: arrays misshapen")
    return MatrixFactorisation(artifact.labels, projection, vectors, bias)


_LOADERS = {
    "expected-gain": _load_expected_gain,
    "knn": _load_knn,
    "matrix-factorisation": _load_matrix_factorisation,
}


def load_model(artifact: Artifact) -> QualityModel:
    """The model an artifact holds (its kind decides which)."""
    loader: Any = _LOADERS.get(artifact.kind)
    if loader is None:
        raise ArtifactError(f"no trained router of kind {artifact.kind!r}")
    try:
        model: QualityModel = loader(artifact)
    except (KeyError, ValueError, TypeError) as error:
        raise ArtifactError(f"{artifact.kind} artifact {artifact.version}: {error}") from None
    return model


def train(
    kind: str,
    data: TrainingSet,
    embeddings: NDArray[np.float32] | None,
    options: Mapping[str, Any] | None = None,
) -> Artifact:
    """Train a router of ``kind`` with its ``options`` (hyperparameters)."""
    options = dict(options or {})
    if kind == "expected-gain":
        return train_expected_gain(data, embeddings, **options)
    if embeddings is None:
        raise ValueError(f"{kind} learns from sentence embeddings: pass them")
    if kind == "knn":
        return train_knn(data, embeddings, **options)
    if kind == "matrix-factorisation":
        return train_matrix_factorisation(data, embeddings, **options)
    raise ValueError(f"unknown router kind {kind!r}; known: {', '.join(KINDS)}")
