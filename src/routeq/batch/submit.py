"""From collected documents to ledger registrations: token counts, limits, names, queries.

Pure apart from counting tokens: the client registers what this module prepares.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from routeq.batch.ingest import Document, hash_text, normalize_text
from routeq.errors import InvalidQueryError
from routeq.ledger.batches import DocumentIn, QueryMaker
from routeq.records import NewQuery, QueryRole
from routeq.summary_spec import SummarySpec, SummaryTask, cache_key
from routeq.tokens import count_tokens

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")

MAX_METADATA_DEPTH: Final = 32
"""Most levels of nested objects and arrays in a query's or document's metadata (the metadata
object itself is level 1).

Metadata travels through recursive code after it is accepted: JSON encoders and decoders (the
ledger's JSONB column, the child queries of a split document), ``str()`` in routing rules.
Python stops recursion near 1,000 frames, and a worker that meets metadata nested ~960 levels
deep dies with RecursionError on every attempt. Real metadata (tags, ids, a small record) needs
a handful of levels; 32 leaves room for that and stays far from any recursion limit. Checked
without recursion, before anything serialises the metadata."""

MAX_METADATA_BYTES: Final = 64 * 1024
"""Largest metadata accepted, in bytes of compact UTF-8 JSON (64 KiB).

Metadata is stored with the query, loaded with it at every hop and copied into every part of a
split document, so an unbounded blob multiplies into ledger rows and worker memory. 64 KiB is
far above labels and ids; keep bigger data elsewhere and put a reference (an id, a URL) in
metadata."""


def metadata_problem(metadata: Mapping[str, Any]) -> str | None:
    """Why ``metadata`` cannot be stored and routed, or None: too deep, not JSON, too large.

    The depth (and a size bound: every value takes at least one byte of JSON) is measured with
    an explicit stack before ``json.dumps`` runs, since the encoder itself recurses and would
    raise RecursionError on the very input the limit exists to refuse. The message names the
    limit and says how to fix the metadata.
    """
    seen = 0
    stack: list[tuple[object, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_METADATA_BYTES:
            return (
                f"metadata holds more than {MAX_METADATA_BYTES:,} values, over the limit of "
                f"{MAX_METADATA_BYTES:,} bytes (64 KiB) as JSON; keep large data elsewhere and "
                "put a reference (an id or a URL) in metadata"
            )
        if isinstance(value, Mapping):
            children: Iterable[object] = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MAX_METADATA_DEPTH:
            return (
                f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep (objects and "
                "arrays within each other, or a container that contains itself); the limit is "
                f"{MAX_METADATA_DEPTH}: flatten it, e.g. store deep structures as a JSON string"
            )
        stack.extend((child, depth + 1) for child in children)
    try:
        # JSONB has no NaN or Infinity; compact separators measure what is stored.
        encoded = json.dumps(metadata, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        return (
            f"metadata is not JSON ({error}); metadata must be JSON-serialisable: use plain "
            "values (strings, finite numbers, booleans, null, lists and objects)"
        )
    if "\\u0000" in encoded:  # JSON escapes NUL even with ensure_ascii=False
        return "metadata contains a NUL character, which the ledger cannot store; remove it"
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        return (
            "metadata contains a lone surrogate (text that is not valid Unicode, often from "
            "decoding bytes with errors='surrogateescape'); decode the source text properly"
        )
    if size > MAX_METADATA_BYTES:
        return (
            f"metadata is {size:,} bytes as JSON, over the limit of {MAX_METADATA_BYTES:,} bytes "
            "(64 KiB); keep large data elsewhere and put a reference (an id or a URL) in metadata"
        )
    return None


def default_batch_name(
    inputs: Sequence[str | Path], spec: SummarySpec, records: Sequence[Document] = ()
) -> str:
    """A name that is the same when the same job runs again, so a re-run resumes its batch:
    the inputs' absolute paths, the ids and texts of documents passed directly, and the spec,
    hashed. (Two different record sets therefore never share a batch by accident.)"""
    resolved = sorted(os.path.abspath(os.fspath(item)) for item in inputs)
    given = sorted(f"{doc.doc_id}\t{doc.content_hash or doc.rejected}" for doc in records)
    digest = hashlib.sha256("\n".join([*resolved, *given, spec.key()]).encode()).hexdigest()[:10]
    first = Path(resolved[0]).name if resolved else "documents"
    return f"summarize-{re.sub(r'[^A-Za-z0-9._-]', '_', first)[:60] or 'documents'}-{digest}"


def check_batch_name(name: str) -> str:
    if not _NAME_PATTERN.match(name):
        raise InvalidQueryError(
            f"batch name {name!r} must be 1-200 characters: letters, digits and . _ : / -, "
            "starting with a letter or digit"
        )
    return name


def documents_from_records(records: Iterable[Document | Mapping[str, Any]]) -> list[Document]:
    """Documents from ``Document`` objects or ``{"id", "text", "metadata"?}`` mappings.

    A malformed record becomes a rejected document (it still gets a row and a reason); only a
    record without a usable id raises, since there would be nothing to name it by.
    """
    documents: list[Document] = []
    for index, record in enumerate(records):
        if isinstance(record, Document):
            documents.append(record)
            continue
        if not isinstance(record, Mapping):
            raise InvalidQueryError(
                f"document #{index}: expected a Document or a mapping with 'id' and 'text', got "
                f"{type(record).__name__}"
            )
        raw_id = record.get("id")
        if raw_id is None or isinstance(raw_id, bool) or not str(raw_id).strip():
            raise InvalidQueryError(f"document #{index}: 'id' is missing or empty")
        doc_id, text = str(raw_id), record.get("text")
        source = str(record.get("source") or f"record #{index}")
        if _lone_surrogate(doc_id + source) is not None:
            raise InvalidQueryError(
                f"document #{index}: 'id' or 'source' is not valid Unicode (a lone surrogate); "
                "decode it properly"
            )
        metadata = record.get("metadata") or {}
        if not isinstance(text, str) or not text.strip():
            reason = f"{source} ({doc_id}): 'text' must be a non-empty string"
            documents.append(Document(doc_id, source, None, format="record", rejected=reason))
        elif (at := _lone_surrogate(text)) is not None:
            reason = f"{source} ({doc_id}): {_surrogate_reason(at)}"
            documents.append(Document(doc_id, source, None, format="record", rejected=reason))
        elif not isinstance(metadata, Mapping):
            reason = f"{source} ({doc_id}): 'metadata' must be a mapping"
            documents.append(Document(doc_id, source, None, format="record", rejected=reason))
        else:
            body = normalize_text(text)
            documents.append(
                Document(doc_id, source, body, dict(metadata), hash_text(body), format="record")
            )
    return documents


def prepare(documents: Sequence[Document], max_chars: int) -> list[DocumentIn]:
    """Registration inputs: token counts for accepted documents, reasons for the rest.

    Ids are made unique within the run: a batch has one row per id, so a second input with
    the same id (a file passed twice, a repeated JSONL id) would otherwise overwrite the
    first. It gets a row of its own, ``ID#2``, rejected with the reason.
    """
    prepared: list[DocumentIn] = []
    first_source: dict[str, str] = {}
    copies: dict[str, int] = {}
    for position, doc in enumerate(documents):
        doc_id, reason = doc.doc_id, doc.rejected
        if doc_id in first_source:
            copies[doc_id] = copies.get(doc_id, 1) + 1
            doc_id = f"{doc_id}#{copies[doc_id]}"
            reason = reason or (
                f"{doc.source}: duplicate id {doc.doc_id!r} (first given by "
                f"{first_source[doc.doc_id]}); give every document a unique id"
            )
        else:
            first_source[doc_id] = doc.source
        if reason is None and doc.text is not None:
            reason = _unsendable(doc, max_chars)
        if reason is not None or doc.text is None:
            prepared.append(
                DocumentIn(
                    doc_id, doc.source, doc.format, rejected=reason or "rejected", position=position
                )
            )
            continue
        prepared.append(
            DocumentIn(
                doc_id,
                doc.source,
                doc.format,
                text=doc.text,
                content_hash=doc.content_hash,
                input_tokens=count_tokens(doc.text),
                metadata=dict(doc.metadata),
                position=position,
            )
        )
    return prepared


def _unsendable(doc: Document, max_chars: int) -> str | None:
    """Why an accepted document still cannot be sent, or None."""
    text = doc.text or ""
    if "\x00" in text:
        return f"{doc.source}: contains a NUL character; remove it"
    if len(text) > max_chars:
        return (
            f"{doc.source}: {len(text):,} characters exceeds max_query_chars ({max_chars:,}); "
            "split the document or raise the limit"
        )
    at = _lone_surrogate(text)
    if at is not None:
        return f"{doc.source}: {_surrogate_reason(at)}"
    problem = metadata_problem(doc.metadata)
    if problem is not None:
        return f"{doc.source}: {problem}"
    return None


def _lone_surrogate(text: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None.

    Such text comes from decoding bytes with ``errors="surrogateescape"``; hashing it, and the
    ledger's UTF-8 connection, would raise on it.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _surrogate_reason(at: int) -> str:
    return (
        f"text contains a lone surrogate at character {at:,} (not valid Unicode, so the ledger "
        "cannot store it); decode the source text properly"
    )


def document_query(spec: SummarySpec, user: str | None = None) -> QueryMaker:
    """A factory of the root query that summarises one registered document."""
    task = SummaryTask(role="document", spec=spec).model_dump(mode="json")

    def make(item: DocumentIn, batch_document_id: int) -> NewQuery:
        assert item.text is not None and item.content_hash is not None
        return NewQuery(
            text=item.text,
            input_tokens=item.input_tokens or count_tokens(item.text),
            metadata={**item.metadata, "doc_id": item.doc_id},
            user=user,
            task=task,
            cache_key=cache_key(item.content_hash, spec),
            batch_document_id=batch_document_id,
            role=QueryRole.DOCUMENT,
        )

    return make
