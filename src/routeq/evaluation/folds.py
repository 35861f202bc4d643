"""Splitting examples so that no number is measured on the data it was trained on. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def fold_of(identifier: str, folds: int, seed: int) -> int:
    """The fold of an example: a hash of its id and the seed, so the split is the same on
    every machine and run, and independent of the file's order."""
    digest = hashlib.sha256(f"{seed}:{identifier}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def k_folds(
    items: Sequence[T], ids: Sequence[str], folds: int, seed: int
) -> list[tuple[list[T], list[T]]]:
    """(train, test) for each of ``folds`` folds; every item is tested exactly once."""
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    if len(items) != len(ids):
        raise ValueError("one id per item")
    assignment = [fold_of(identifier, folds, seed) for identifier in ids]
    return [
        (
            [item for item, fold in zip(items, assignment, strict=True) if fold != k],
            [item for item, fold in zip(items, assignment, strict=True) if fold == k],
        )
        for k in range(folds)
    ]
