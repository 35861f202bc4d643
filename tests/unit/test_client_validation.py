"""Client._validate: what a submit refuses before anything is written, and what it accepts.

No Postgres or Redis: ``_validate`` needs only the settings, so the client is built without
``__init__`` (which would resolve endpoints and open an engine).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from routeq.batch.submit import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, metadata_problem
from routeq.client import Client
from routeq.config import Settings
from routeq.errors import InvalidQueryError
from routeq.tokens import count_tokens


def make_client(settings: Settings) -> Client:
    client = object.__new__(Client)
    client.settings = settings
    return client


def nested(depth: int) -> dict[str, Any]:
    """Metadata whose objects are nested ``depth`` levels deep (the outer object is level 1)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.fixture
def client(settings: Settings) -> Client:
    return make_client(settings)


@pytest.mark.parametrize("special", ["<|endoftext|>", "<|im_start|>", "<|fim_prefix|>"])
def test_text_with_special_token_is_accepted_and_counted(client: Client, special: str) -> None:
    text = f"{special}user\nWhat does {special} mean?"
    query = client._validate(0, text)
    assert query.text == text
    assert query.input_tokens == count_tokens(text) > 2 * count_tokens(special)


def test_long_text_with_raised_limit_is_refused_cleanly_not_crashed(settings: Settings) -> None:
    client = make_client(settings.model_copy(update={"max_query_chars": 5_000_000}))
    text = "A sentence that repeats to make a very long input. " * 40_000  # 2,040,000 chars
    with pytest.raises(InvalidQueryError, match="does not fit any tier's context window"):
        client._validate(0, text)


def test_long_text_is_accepted_by_a_tier_with_a_window_for_it(settings: Settings) -> None:
    big = settings.tiers[-1].model_copy(update={"context_window": 10_000_000})
    client = make_client(settings.model_copy(update={"max_query_chars": 5_000_000, "tiers": [big]}))
    text = "<|endoftext|> and more words\n" * 170_000  # 4,930,000 characters
    start = time.perf_counter()
    query = client._validate(0, text)
    assert time.perf_counter() - start < 10
    assert query.input_tokens == 170_000 * count_tokens("<|endoftext|> and more words\n")


def test_metadata_at_the_depth_limit_is_accepted(client: Client) -> None:
    metadata = nested(MAX_METADATA_DEPTH)
    assert client._validate(0, {"text": "hi", "metadata": metadata}).metadata == metadata
    # Arrays count as levels too.
    as_lists: Any = [1]
    for _ in range(MAX_METADATA_DEPTH - 2):
        as_lists = [as_lists]
    client._validate(0, {"text": "hi", "metadata": {"a": as_lists}})


@pytest.mark.parametrize("depth", [MAX_METADATA_DEPTH + 1, 960, 100_000])
def test_metadata_nested_too_deep_is_refused(client: Client, depth: int) -> None:
    with pytest.raises(InvalidQueryError) as caught:
        client._validate(3, {"text": "hi", "metadata": nested(depth)})
    message = str(caught.value)
    assert message.startswith("query #3: metadata is nested more than 32 levels deep")
    assert "flatten" in message


def test_deep_array_inside_metadata_is_refused(client: Client) -> None:
    deep: Any = []
    for _ in range(MAX_METADATA_DEPTH):
        deep = [deep]
    with pytest.raises(InvalidQueryError, match="nested more than 32 levels"):
        client._validate(0, {"text": "hi", "metadata": {"a": deep}})


def test_self_referencing_metadata_is_refused(client: Client) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidQueryError, match="contains itself"):
        client._validate(0, {"text": "hi", "metadata": loop})


def test_metadata_size_limit(client: Client) -> None:
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    at_limit = {"blob": "x" * (MAX_METADATA_BYTES - overhead)}
    client._validate(0, {"text": "hi", "metadata": at_limit})
    over = {"blob": "x" * (MAX_METADATA_BYTES - overhead + 1)}
    with pytest.raises(InvalidQueryError) as caught:
        client._validate(0, {"text": "hi", "metadata": over})
    assert "65,537 bytes as JSON, over the limit of 65,536 bytes (64 KiB)" in str(caught.value)
    assert "reference" in str(caught.value)


def test_metadata_size_counts_utf8_bytes(client: Client) -> None:
    # 22,000 three-byte characters: 66,000 bytes although only 22,000 characters.
    with pytest.raises(InvalidQueryError, match="over the limit of 65,536 bytes"):
        client._validate(0, {"text": "hi", "metadata": {"name": "語" * 22_000}})


def test_huge_metadata_is_refused_without_serialising_it(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = {"ids": list(range(10 * MAX_METADATA_BYTES))}

    def serialise(*args: object, **kwargs: object) -> str:
        raise AssertionError("the metadata was serialised before its size was checked")

    # Behaviour, not a stopwatch (a loaded machine makes any time limit flaky).
    monkeypatch.setattr(json, "dumps", serialise)
    with pytest.raises(InvalidQueryError, match="more than 65,536 values"):
        client._validate(0, {"text": "hi", "metadata": many})


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"x": float("nan")}, "JSON-serialisable"),
        ({"x": {1, 2}}, "JSON-serialisable"),
        ({"x": "a\x00b"}, "NUL character"),
        ({"x": "a\udcffb"}, "lone surrogate"),
        (["not", "a", "mapping"], "must be a mapping"),
        ("text", "must be a mapping"),
    ],
)
def test_bad_metadata_is_refused_with_its_reason(
    client: Client, metadata: Any, fragment: str
) -> None:
    with pytest.raises(InvalidQueryError, match=fragment):
        client._validate(0, {"text": "hi", "metadata": metadata})


def test_text_with_lone_surrogate_and_non_text_items_are_refused(client: Client) -> None:
    with pytest.raises(InvalidQueryError, match="lone surrogate at character 2"):
        client._validate(0, "ab\ud800cd")
    with pytest.raises(InvalidQueryError, match="expected a string or a mapping"):
        client._validate(1, 42)  # type: ignore[arg-type]


def test_metadata_problem_accepts_ordinary_metadata() -> None:
    assert metadata_problem({}) is None
    assert metadata_problem({"task": "coding", "tags": ["a", "b"], "n": 3, "ok": True}) is None
