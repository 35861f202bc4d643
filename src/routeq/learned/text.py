"""Text features a trained router reads: word n-gram TF-IDF and the prompt's shape.

Both are fitted at training time and stored in the artifact as plain arrays (the vocabulary as
a string array, the IDF weights, the shape features' means and spreads), so inference needs no
scikit-learn and gives the same numbers the model was trained on.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from routeq.tokens import count_tokens

_WORD = re.compile(r"[^\W_]+|[=+*/^%$<>-]", re.UNICODE)  # words and arithmetic symbols
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def words(text: str) -> list[str]:
    """Lower-cased words and operator symbols, then adjacent pairs of them."""
    unigrams = _WORD.findall(text.lower())
    return unigrams + [f"{a} {b}" for a, b in itertools.pairwise(unigrams)]


@dataclass(frozen=True)
class Tfidf:
    """Word and word-pair TF-IDF with sublinear term frequency and unit-length rows."""

    vocabulary: Mapping[str, int]
    idf: NDArray[np.float64]

    @classmethod
    def fit(cls, texts: Sequence[str], *, min_df: int = 2, max_terms: int = 50_000) -> Tfidf:
        document_frequency: Counter[str] = Counter()
        for text in texts:
            document_frequency.update(set(words(text)))
        kept = [term for term, df in document_frequency.items() if df >= min_df]
        kept.sort(key=lambda term: (-document_frequency[term], term))
        kept = sorted(kept[:max_terms])
        n = len(texts)
        idf = np.array(
            [math.log((1 + n) / (1 + document_frequency[term])) + 1 for term in kept],
            dtype=np.float64,
        )
        return cls({term: i for i, term in enumerate(kept)}, idf)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for row, text in enumerate(texts):
            counts = Counter(t for t in words(text) if t in self.vocabulary)
            weights = {
                self.vocabulary[t]: (1 + math.log(c)) * self.idf[self.vocabulary[t]]
                for t, c in counts.items()
            }
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for col, weight in weights.items():
                rows.append(row)
                cols.append(col)
                values.append(weight / norm)
        return sparse.csr_matrix(
            (values, (rows, cols)), shape=(len(texts), len(self.vocabulary)), dtype=np.float64
        )

    def arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {f"{prefix}terms": np.array(terms, dtype=np.str_), f"{prefix}idf": self.idf}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], prefix: str) -> Tfidf:
        terms = arrays[f"{prefix}terms"].tolist()
        return cls({str(t): i for i, t in enumerate(terms)}, arrays[f"{prefix}idf"])


SHAPE_NAMES = (
    "log_tokens",
    "numbers",
    "distinct_numbers",
    "log_longest_number",
    "decimals",
    "sentences",
    "questions",
    "math_symbols",
    "code_marks",
    "lines",
    "options",
)


def shape(text: str) -> list[float]:
    """What the prompt looks like, independent of its words: length, how many numbers and how
    long, sentences, questions, arithmetic and code marks, lines, multiple-choice options.
    Longer prompts with more quantities tend to need more reasoning steps."""
    numbers = _NUMBER.findall(text)
    return [
        math.log1p(count_tokens(text)),
        float(len(numbers)),
        float(len(set(numbers))),
        math.log1p(max((len(n) for n in numbers), default=0)),
        float(sum(1 for n in numbers if "." in n)),
        float(len(_SENTENCE_END.findall(text))),
        float(text.count("?")),
        float(sum(text.count(c) for c in "=+*/^%$<>")),
        float(sum(text.count(c) for c in "{};`")),
        float(text.count("\n")),
        float(len(re.findall(r"(?m)^[A-D][.)]\s", text))),
    ]


# Standardised features are clipped here: a prompt unlike any in training (a feature the
# training data barely varied on) must not swing a decision by dozens of its spreads.
CLIP = 5.0


def fit_scale(raw: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The training columns' means and spreads; a column that did not vary (or only by float
    noise) gets a spread of 1, so it stays at 0 instead of blowing up."""
    spread = raw.std(axis=0)
    return raw.mean(axis=0), np.where(spread > 1e-6, spread, 1.0)


def standardise(
    raw: NDArray[np.float64], mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    result: NDArray[np.float64] = np.clip((raw - mean) / scale, -CLIP, CLIP)
    return result


@dataclass(frozen=True)
class Shape:
    """The shape features, standardised with the training data's means and spreads."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Shape:
        return cls(*fit_scale(np.array([shape(t) for t in texts], dtype=np.float64)))

    def transform(self, texts: Sequence[str]) -> NDArray[np.float64]:
        raw = np.array([shape(t) for t in texts], dtype=np.float64).reshape(-1, len(SHAPE_NAMES))
        return standardise(raw, self.mean, self.scale)

    def arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        return {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], prefix: str) -> Shape:
        return cls(arrays[f"{prefix}mean"], arrays[f"{prefix}scale"])
