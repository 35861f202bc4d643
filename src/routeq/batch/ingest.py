"""Turn user inputs (files, directories, glob patterns) into documents for batch summarisation.

``routeq summarize PATH... --out FILE`` must answer for every input the user named: a summary, or
the reason there is none. So nothing here is ever silently dropped. A file that cannot be used
(missing, unsupported type, binary, too large, undecodable, empty, a duplicate) becomes a
*rejected* :class:`Document` whose ``rejected`` text names the file and says how to fix it; the
caller writes those out next to the summaries. The only inputs skipped without a trace are hidden
files and directories met while walking a directory, the way ``ls`` and most tools skip them.

Formats: plain text, Markdown, HTML (main content only), reStructuredText, PDF (text layer),
Word ``.docx`` and JSONL records. How each becomes text lives in :mod:`routeq.batch.extract`;
this module finds the files, reads them within the size limit and accounts for every input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from routeq.batch.extract import ExtractionError, normalize_text
from routeq.batch.extract.encoding import decode_bytes
from routeq.batch.extract.html_text import html_to_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_BY_EXTENSION",
    "UNKNOWN_FORMAT",
    "Document",
    "collect",
    "decode_bytes",
    "hash_text",
    "html_to_text",
    "normalize_text",
]

DEFAULT_MAX_BYTES: Final = 20_000_000
"""Largest file read, in bytes: far above any document worth one summary, and bounds memory."""

FORMAT_BY_EXTENSION: Final[dict[str, str]] = {
    "": "text",
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".rst": "rst",
    ".pdf": "pdf",
    ".docx": "docx",
    ".jsonl": "jsonl",
}
"""Lower-cased file extension to document format; anything else is rejected as unsupported."""

UNKNOWN_FORMAT: Final = "unknown"
"""``format`` of a rejected document whose format could not be told (missing path, ``.odt``)."""

_BINARY_FORMATS: Final = frozenset({"pdf", "docx"})
"""Formats read from bytes by their own extractor rather than decoded as text first."""

_GLOB_MAGIC: Final = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Document:
    """One unit to summarise, or the record of an input that could not become one.

    Exactly one of ``text`` and ``rejected`` is set, so a caller can write every Document out,
    summaries and refusals alike, and the output accounts for every input.
    """

    doc_id: str
    """Stable id: the path relative to the directory input it was found in, the path as given or
    matched for file and pattern inputs, or the ``id`` of a JSONL record."""
    source: str
    """Where it came from, for people: the file path, ``path:LINE`` for a JSONL record, or the
    input exactly as given when nothing was found."""
    text: str | None
    """Extracted, whitespace-normalised text; None when rejected."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """For files: ``bytes``; ``encoding`` for text formats; ``title`` when the HTML, RST, PDF
    or Word document has one; ``pages`` for PDF. For JSONL: the record's own."""
    content_hash: str | None = None
    """sha256 hex of the normalised text, so an already-summarised text can be reused."""
    format: str = "text"
    """``text``, ``markdown``, ``html``, ``rst``, ``pdf``, ``docx`` or ``jsonl``; ``unknown`` for
    some rejected inputs."""
    rejected: str | None = None
    """Why there is no text: names the input and says how to fix it."""

    def __post_init__(self) -> None:
        if (self.text is None) == (self.rejected is None):
            raise ValueError("a Document has either text or a rejection reason, exactly one")
        if self.text is not None and self.content_hash is None:
            # Documents built elsewhere (tests, other ingesters) still get a comparable hash.
            object.__setattr__(self, "content_hash", hash_text(self.text))

    @property
    def ok(self) -> bool:
        """True when the document has text to summarise."""
        return self.rejected is None


def hash_text(text: str) -> str:
    """sha256 hex of ``text`` after :func:`normalize_text`.

    Hashing the normalised form makes a re-saved file (CRLF, trailing spaces) hit the same cached
    summary as the original.
    """
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


class _Rejected(Exception):
    """Internal: carries a rejection reason out of nested extraction code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Candidate:
    """A file found for an input, or a directory entry that could not be used (``problem``)."""

    path: Path
    doc_id: str
    problem: str | None = None


def collect(inputs: Sequence[str | Path], *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Document]:
    """Expand ``inputs`` into documents, in input order, accounting for every one of them.

    Each input is, in this order of precedence:

    - a directory: walked recursively in sorted order, hidden (dot) files and directories
      skipped, symbolic links to directories rejected rather than followed (no loops); doc_ids
      are paths relative to that directory (``reports/q3.md``), so they do not change when the
      tree moves;
    - an existing file: its doc_id is the path as given (``docs/q3.md``), the same id a shell
      glob expansion would produce;
    - a glob pattern (``*``, ``?``, ``[...]``, recursive ``**``): matches in sorted order, ids as
      matched; matched directories are walked;
    - otherwise one rejected document saying nothing exists or matches.

    Every file yields one document, except a ``.jsonl`` file, which yields one per non-blank
    line. A file reached again through a later input is rejected as the same file; a document
    whose doc_id an earlier *accepted* document already has is rejected as a duplicate (a
    rejected document claims no id, so a corrected record later in the batch can still be used).

    Raises TypeError for a bare string (which would be iterated character by character) and
    ValueError for a non-positive ``max_bytes``.
    """
    if isinstance(inputs, str | Path):
        raise TypeError("collect() takes a sequence of inputs, e.g. [path], not a single path")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    documents: list[Document] = []
    first_id_source: dict[str, str] = {}
    first_file_source: dict[str, str] = {}
    for raw in inputs:
        for item in _expand(raw):
            if isinstance(item, Document):
                documents.append(item)
                continue
            real = os.path.realpath(item.path)
            if item.problem is None and real in first_file_source:
                first = first_file_source[real]
                same = "" if first == str(item.path) else f" (as {first})"
                reason = (
                    f"{item.path} was already collected from an earlier input{same}; "
                    "pass each file only once"
                )
                documents.append(
                    _reject(item.doc_id, str(item.path), reason, _format_of(item.path))
                )
                continue
            first_file_source.setdefault(real, str(item.path))
            for document in _load(item, max_bytes):
                documents.append(_check_duplicate(document, first_id_source))
    return documents


def _check_duplicate(document: Document, first_id_source: dict[str, str]) -> Document:
    """Reject ``document`` if an accepted document already has its id; else claim the id."""
    if not document.ok:
        return document
    first = first_id_source.get(document.doc_id)
    if first is None:
        first_id_source[document.doc_id] = document.source
        return document
    if document.format == "jsonl":
        fix = "give every record a unique id"
    else:
        fix = (
            "ids are paths relative to each input directory; rename one, or pass their common "
            "parent directory instead"
        )
    return _reject(
        document.doc_id,
        document.source,
        f"{document.source}: duplicate id {document.doc_id!r} (first seen in {first}); {fix}",
        document.format,
    )


def _expand(raw: str | Path) -> Iterator[_Candidate | Document]:
    """Files (or problems) for one input; a rejected Document when nothing matches."""
    given = os.fspath(raw)
    if not given:
        yield _reject("", "", "empty input path; pass a file, a directory or a glob pattern")
        return
    path = Path(given)
    if path.is_dir():
        yield from _walk(path, id_root=path)
        return
    if path.exists() or path.is_symlink():  # a broken link is reported when it is read
        yield _Candidate(path, path.as_posix())
        return
    if _GLOB_MAGIC.search(given):
        import glob  # only patterns need it

        matches = sorted(glob.glob(given, recursive=True))
        if matches:
            seen: set[Path] = set()
            for match in map(Path, matches):
                if match.is_dir():
                    found = _walk(match, id_root=None)
                else:
                    found = [_Candidate(match, match.as_posix())]
                for item in found:
                    if item.path not in seen:  # "**" matches a directory and its files both
                        seen.add(item.path)
                        yield item
            return
    yield _reject(
        given,
        given,
        f"{given!r}: no such file or directory, and no file matches it as a pattern; check the "
        "path (and quote patterns so the shell does not expand them)",
        UNKNOWN_FORMAT,
    )


def _walk(root: Path, *, id_root: Path | None) -> list[_Candidate]:
    """Non-hidden files under ``root``, sorted by path, with ids relative to ``id_root``.

    ``id_root=None`` keeps paths as found. Unreadable directories and directory symlinks come
    back as candidates with a ``problem``, so they are reported instead of vanishing.
    """

    def ident(path: Path) -> str:
        if id_root is None or path == id_root:
            return path.as_posix()
        return path.relative_to(id_root).as_posix()

    found: list[_Candidate] = []

    def on_error(error: OSError) -> None:
        where = Path(error.filename) if error.filename else root
        found.append(
            _Candidate(
                where,
                ident(where),
                f"cannot read directory {where}: {error.strerror or error}; check its permissions",
            )
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        base = Path(dirpath)
        kept: list[str] = []
        for name in dirnames:
            if name.startswith("."):
                continue
            if (base / name).is_symlink():
                found.append(
                    _Candidate(
                        base / name,
                        ident(base / name),
                        f"{base / name} is a symbolic link to a directory, which is not followed "
                        "(to avoid loops); pass it as an input of its own to include it",
                    )
                )
            else:
                kept.append(name)
        dirnames[:] = kept
        found.extend(
            _Candidate(base / name, ident(base / name))
            for name in filenames
            if not name.startswith(".")
        )
    return sorted(found, key=lambda candidate: candidate.path.parts)


def _format_of(path: Path) -> str:
    return FORMAT_BY_EXTENSION.get(path.suffix.lower(), UNKNOWN_FORMAT)


def _reject(doc_id: str, source: str, reason: str, fmt: str = UNKNOWN_FORMAT) -> Document:
    return Document(doc_id=doc_id, source=source, text=None, format=fmt, rejected=reason)


def _accept(doc_id: str, source: str, text: str, metadata: dict[str, Any], fmt: str) -> Document:
    """An accepted document, or a rejected one when ``text`` holds only whitespace."""
    if not text.strip():
        what = (
            "no text left after removing the markup"
            if fmt in ("html", "rst")
            else "only whitespace"
        )
        return _reject(
            doc_id,
            source,
            f"{source}: empty document ({what}); add text or leave it out",
            fmt,
        )
    return Document(
        doc_id=doc_id,
        source=source,
        text=text,
        metadata=metadata,
        content_hash=hash_text(text),
        format=fmt,
    )


def _load(candidate: _Candidate, max_bytes: int) -> list[Document]:
    """The document(s) of one file: one, or one per non-blank line of a ``.jsonl`` file."""
    source = str(candidate.path)
    fmt = _format_of(candidate.path)
    try:
        if candidate.problem is not None:
            raise _Rejected(candidate.problem)
        data = _read(candidate.path, fmt, max_bytes)
        if fmt in _BINARY_FORMATS:
            body, metadata = _binary_extractor(fmt)(data)
            return [_accept(candidate.doc_id, source, body, {"bytes": len(data), **metadata}, fmt)]
        text, encoding = decode_bytes(data, name=source, html=fmt == "html")
    except _Rejected as rejection:
        return [_reject(candidate.doc_id, source, rejection.reason, fmt)]
    except ExtractionError as error:  # from an extractor: says what and how, not which file
        return [_reject(candidate.doc_id, source, f"{source}: {error}", fmt)]
    except ValueError as error:  # from decode_bytes, already naming the file
        return [_reject(candidate.doc_id, source, str(error), fmt)]
    if fmt == "jsonl":
        return _jsonl_documents(text, source)
    metadata = {"encoding": encoding, "bytes": len(data)}
    try:
        body, title = _markup_to_text(fmt, text)
    except ExtractionError as error:
        return [_reject(candidate.doc_id, source, f"{source}: {error}", fmt)]
    if title is not None:
        metadata["title"] = title
    return [_accept(candidate.doc_id, source, body, metadata, fmt)]


def _markup_to_text(fmt: str, text: str) -> tuple[str, str | None]:
    """The text of a decoded text-format file and its title, if the format has one."""
    if fmt == "html":
        try:
            return html_to_text(text)
        except (AssertionError, ValueError) as error:  # HTMLParser's rare internal failures
            raise ExtractionError(
                f"cannot parse the HTML ({error}); fix the markup or save as .txt"
            ) from None
    if fmt == "rst":
        from routeq.batch.extract.rst_text import rst_to_text  # docutils: only when needed

        return rst_to_text(text)
    return normalize_text(text), None


def _binary_extractor(fmt: str) -> Callable[[bytes], tuple[str, dict[str, Any]]]:
    """The extractor of a binary format, imported on first use: pypdf and python-docx (with
    lxml) take a quarter of a second to import, which every routeq command would pay."""
    if fmt == "pdf":
        from routeq.batch.extract.pdf_text import pdf_to_text

        return pdf_to_text
    from routeq.batch.extract.docx_text import docx_to_text

    return docx_to_text


def _read(path: Path, fmt: str, max_bytes: int) -> bytes:
    """The bytes of a supported, regular file within the size limit; else :class:`_Rejected`."""
    if fmt == UNKNOWN_FORMAT:
        supported = ", ".join(sorted(ext for ext in FORMAT_BY_EXTENSION if ext))
        raise _Rejected(
            f"{path}: unsupported file type {path.suffix.lower()!r}; supported: {supported} and "
            "files without an extension; convert it to text (or HTML/Markdown) first"
        )
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _Rejected(f"{path} is not a regular file (a device, pipe or socket); pass a file")
        _check_size(path, info.st_size, max_bytes)
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # +1: notice a file that grew since stat()
    except OSError as error:
        raise _Rejected(
            f"cannot read {path}: {error.strerror or error}; check that it exists and is readable"
        ) from None
    _check_size(path, len(data), max_bytes)
    return data


def _check_size(path: Path, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise _Rejected(
            f"{path} is {size:,} bytes, over the limit of {max_bytes:,} bytes; split it into "
            "smaller files or raise the limit"
        )


_JSON_TYPES: Final = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _jsonl_documents(text: str, source: str) -> list[Document]:
    """One document per non-blank line of a JSONL file (blank lines are layout, not records)."""
    documents = [
        _jsonl_document(line, f"{source}:{number}")
        for number, line in enumerate(text.split("\n"), start=1)  # not splitlines(): U+2028
        if line.strip()
    ]
    if not documents:
        return [
            _reject(
                source,
                source,
                f"{source}: empty document (no JSON lines); add one "
                '{"id": ..., "text": ...} object per line or leave it out',
                "jsonl",
            )
        ]
    return documents


def _jsonl_document(line: str, where: str) -> Document:
    """The document of one JSONL record ``{"id", "text", "metadata"?}``; ``where`` is path:LINE."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return _reject(
            where,
            where,
            f"{where}: invalid JSON ({error.msg}, column {error.colno}); fix or remove the line",
            "jsonl",
        )
    except RecursionError:
        return _reject(
            where, where, f"{where}: JSON nested too deeply; flatten the record", "jsonl"
        )
    if not isinstance(record, dict):
        return _reject(
            where,
            where,
            f'{where}: expected a JSON object like {{"id": ..., "text": ...}}, got '
            f"{_json_type(record)}",
            "jsonl",
        )
    raw_id = record.get("id")
    if "id" not in record:
        problem = "missing 'id'; give every record a unique string or integer id"
    elif isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        problem = f"'id' must be a string or an integer, got {_json_type(raw_id)}"
    elif not str(raw_id).strip():
        problem = "'id' is empty; give every record a unique string or integer id"
    else:
        problem = None
    if problem is not None:
        return _reject(where, where, f"{where}: {problem}", "jsonl")
    doc_id = str(raw_id)
    raw_text = record.get("text")
    metadata = record.get("metadata")
    if "text" not in record:
        problem = "missing 'text'; add the document text as a string"
    elif not isinstance(raw_text, str):
        problem = f"'text' must be a string, got {_json_type(raw_text)}"
    elif metadata is not None and not isinstance(metadata, dict):
        problem = f"'metadata' must be a JSON object if present, got {_json_type(metadata)}"
    if problem is not None or not isinstance(raw_text, str):
        return _reject(doc_id, where, f"{where}: {problem}", "jsonl")
    return _accept(doc_id, where, normalize_text(raw_text), dict(metadata or {}), "jsonl")
