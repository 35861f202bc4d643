"""Batch inputs that used to crash a batch (or its workers) become rejected rows with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from routeq.batch.ingest import Document, collect
from routeq.batch.submit import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    documents_from_records,
    prepare,
)
from routeq.errors import InvalidQueryError
from routeq.tokens import count_tokens


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_jsonl_records_over_the_metadata_limits_are_rejected_the_rest_kept(
    tmp_path: Path,
) -> None:
    lines = [
        {"id": "ok", "text": "Aldera shipped 3 releases.", "metadata": nested(MAX_METADATA_DEPTH)},
        {"id": "deep", "text": "Some text.", "metadata": nested(900)},  # json.loads copes
        {"id": "big", "text": "Some text.", "metadata": {"blob": "x" * MAX_METADATA_BYTES}},
        {"id": "special", "text": "Tokens like <|endoftext|> and <|im_start|> are text."},
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    documents = collect([path])
    assert all(document.ok for document in documents)  # the limits apply when preparing
    prepared = prepare(documents, max_chars=1000)
    assert [item.doc_id for item in prepared] == ["ok", "deep", "big", "special"]
    ok, deep, big, special = prepared
    assert ok.rejected is None and ok.metadata == nested(MAX_METADATA_DEPTH)
    assert deep.rejected is not None
    assert deep.rejected.startswith(f"{path}:2: metadata is nested more than 32 levels deep")
    assert big.rejected is not None and "over the limit of 65,536 bytes" in big.rejected
    assert special.rejected is None
    assert special.input_tokens == count_tokens(lines[3]["text"]) > 10


def test_records_passed_directly_are_checked_the_same_way() -> None:
    docs = documents_from_records(
        [
            {"id": "deep", "text": "Some text.", "metadata": nested(5_000)},
            {"id": "nul", "text": "Some text.", "metadata": {"x": "a\x00b"}},
            {"id": "surrogate", "text": "bad \udc80 text"},
            {"id": "fine", "text": "Fine text.", "metadata": {"lang": "en"}},
        ]
    )
    reasons = [item.rejected for item in prepare(docs, max_chars=1000)]
    assert reasons[0] is not None and "nested more than 32 levels" in reasons[0]
    assert reasons[1] is not None and "NUL character" in reasons[1]
    assert reasons[2] is not None and "lone surrogate at character 4" in reasons[2]
    assert reasons[3] is None


def test_self_referencing_document_metadata_is_a_rejection() -> None:
    loop: dict[str, Any] = {}
    loop["again"] = [loop]
    [item] = prepare([Document("a", "a.txt", "Text.", metadata=loop)], max_chars=1000)
    assert item.rejected is not None and "contains itself" in item.rejected


def test_a_record_that_is_not_a_mapping_raises_a_clear_error() -> None:
    with pytest.raises(InvalidQueryError, match="document #1: expected a Document or a mapping"):
        documents_from_records([{"id": 1, "text": "x"}, ["id", "text"]])  # type: ignore[list-item]


def test_a_very_long_document_is_counted_when_the_limit_allows_it() -> None:
    text = "A line of a very long report, with <|endoftext|> in it.\n" * 60_000  # 3.4M chars
    [item] = prepare([Document("long", "long.txt", text)], max_chars=5_000_000)
    assert item.rejected is None
    assert item.input_tokens == 60_000 * count_tokens(
        "A line of a very long report, with <|endoftext|> in it.\n"
    )
