"""Trained-policy artifacts: one versioned file per trained router.

An artifact is a zip file holding ``metadata.json`` (what kind of model, the format version,
the labels it predicts, what it was trained on, when, and its held-out metrics) and one
``.npy`` entry per array. No pickle: loading never runs code from the file, and a file written
by one version of scikit-learn or NumPy reads with another, because only plain arrays and
JSON are kept. The version recorded on route hops is a hash of the file's bytes, so two
trainings of the same kind are told apart in reports.

Everything that can be wrong with a file (missing, not a zip, a kind or format this routeq does
not read, arrays missing) raises ``ArtifactError``, a ``ConfigError``: a worker refuses to
start with it rather than routing with half a model.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeq.errors import ConfigError

FORMAT_VERSION = 1
_METADATA = "metadata.json"


class ArtifactError(ConfigError):
    """A trained-policy artifact is missing, corrupt, or not one this policy can use."""


@dataclass(frozen=True)
class Artifact:
    """A trained model: its kind (which policy reads it), the labels it predicts (tier or
    model names, in the order of its outputs), free-form metadata (training data, date,
    metrics, hyperparameters) and its arrays by name."""

    kind: str
    labels: tuple[str, ...]
    arrays: Mapping[str, NDArray[Any]]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""  # filled in from the file's bytes when written or read

    def array(self, name: str) -> NDArray[Any]:
        try:
            return self.arrays[name]
        except KeyError:
            raise ArtifactError(
                f"{self.kind} artifact {self.version or '(unsaved)'} has no array {name!r}: it "
                "was written by another version of routeq or is damaged; train it again"
            ) from None


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def to_bytes(artifact: Artifact) -> bytes:
    """The artifact as the bytes of its file."""
    buffer = io.BytesIO()
    header = {
        "format_version": FORMAT_VERSION,
        "kind": artifact.kind,
        "labels": list(artifact.labels),
        "arrays": sorted(artifact.arrays),
        "metadata": dict(artifact.metadata),
    }
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        # Fixed timestamps: the same model gives the same bytes, hence the same version.
        archive.writestr(_entry(_METADATA), json.dumps(header, indent=1, sort_keys=True))
        for name in sorted(artifact.arrays):
            array_bytes = io.BytesIO()
            np.save(array_bytes, np.ascontiguousarray(artifact.arrays[name]), allow_pickle=False)
            archive.writestr(_entry(f"{name}.npy"), array_bytes.getvalue())
    return buffer.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def save(artifact: Artifact, path: Path) -> Artifact:
    """Write ``artifact`` to ``path`` (atomically: a reader never sees half a file) and return
    it with its version."""
    data = to_bytes(artifact)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
    return Artifact(
        artifact.kind, artifact.labels, artifact.arrays, artifact.metadata, _version(data)
    )


def load(path: Path, kind: str) -> Artifact:
    """Read the ``kind`` artifact at ``path``; ``ArtifactError`` says what is wrong with it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"trained {kind} artifact {path} does not exist: train one with "
            f"`routeq train --policy {kind} ...` or fix [routing.policy] artifact"
        ) from None
    except OSError as error:
        raise ArtifactError(f"cannot read {kind} artifact {path}: {error.strerror}") from None
    return from_bytes(data, kind, source=str(path))


def from_bytes(data: bytes, kind: str, *, source: str = "artifact") -> Artifact:
    """Parse artifact bytes, checking the kind, the format version and every listed array."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            header = json.loads(archive.read(_METADATA))
            if not isinstance(header, dict):
                raise ValueError("metadata is not an object")
            _check_header(header, kind, source)
            arrays = {
                name: np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
                for name in header["arrays"]
            }
    except ArtifactError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        OSError,
        EOFError,
        NotImplementedError,
    ) as error:  # every way a damaged file has been seen to fail
        raise ArtifactError(
            f"{source} is not a readable routeq artifact ({error}); train it again"
        ) from None
    return Artifact(
        kind=kind,
        labels=tuple(str(label) for label in header["labels"]),
        arrays=arrays,
        metadata=header.get("metadata", {}),
        version=_version(data),
    )


def _check_header(header: dict[str, Any], kind: str, source: str) -> None:
    found_kind = header.get("kind")
    if found_kind != kind:
        raise ArtifactError(
            f"{source} holds a {found_kind!r} model, not a {kind!r} one: point the policy at "
            "an artifact trained for it"
        )
    found_format = header.get("format_version")
    if found_format != FORMAT_VERSION:
        raise ArtifactError(
            f"{source} has artifact format {found_format!r}; this routeq reads format "
            f"{FORMAT_VERSION}: train it again with this version"
        )
    labels = header.get("labels")
    if not isinstance(labels, list) or not labels:
        raise ArtifactError(f"{source} names no labels (tiers or models) it predicts")
    if not isinstance(header.get("arrays"), list):
        raise ArtifactError(f"{source} lists no arrays")
