"""The producer API against real Postgres and Redis: validation, waiting, idempotency, and what
reaches the broker."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from stack import running_stack, sim_config

from routeq import Client
from routeq.config import Settings, TierConfig, load_settings
from routeq.errors import InvalidQueryError, UnknownQueryError
from routeq.ledger import Ledger

pytestmark = pytest.mark.integration

UNREACHABLE = "http://127.0.0.1:9/v1"  # no model is ever called by these clients


def small_tier(name: str, context_window: int) -> TierConfig:
    return TierConfig(
        name=name,
        provider="openai",
        base_url=UNREACHABLE,
        model=f"model-{name}",
        input_price_per_mtok=Decimal("0.1"),
        output_price_per_mtok=Decimal("0.2"),
        context_window=context_window,
        max_output_tokens=1000,
    )


def row_counts(ledger: Ledger) -> tuple[int, int]:
    with ledger.engine.connect() as conn:
        queries = conn.execute(sa.text("SELECT count(*) FROM queries")).scalar_one()
        hops = conn.execute(sa.text("SELECT count(*) FROM hops")).scalar_one()
    return int(queries), int(hops)


@pytest.fixture
def small_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger: Ledger, broker_url: str
) -> Iterator[Client]:
    """A client whose largest tier takes 1,100 tokens (100 of input beside 1,000 of answer)
    and at most 2,000 characters per query."""
    monkeypatch.chdir(tmp_path)  # no ./routeq.toml is read
    database_url = ledger.engine.url.render_as_string(hide_password=False)
    settings = load_settings(
        database_url=database_url,
        broker_url=broker_url,
        state_dir=tmp_path / "state",
        max_query_chars=2000,
        tiers=[small_tier("tiny", 1050), small_tier("small", 1100)],
    )
    with Client(settings) as client:
        yield client


@pytest.fixture
def offline_client(tmp_path: Path, ledger: Ledger, broker_url: str) -> Iterator[Client]:
    """A client on the default ladder with no worker consuming its queues."""
    database_url = ledger.engine.url.render_as_string(hide_password=False)
    settings = Settings(
        database_url=database_url, broker_url=broker_url, state_dir=tmp_path / "state"
    )
    with Client(settings) as client:
        yield client


# -- bad input -------------------------------------------------------------------------------------


class NotJson:
    pass


BAD_SUBMISSIONS: list[tuple[str, dict[str, Any], str]] = [
    ("empty", {"text": ""}, "text is empty"),
    ("whitespace", {"text": " \n\t "}, "text is empty"),
    ("not a string", {"text": 42}, "text must be a string, got int"),
    ("none", {"text": None}, "text must be a string, got NoneType"),
    (
        "too many tokens",
        {"text": "hello world " * 120},
        "does not fit any tier's context window (largest: small, 1,100 tokens",
    ),
    ("too many chars", {"text": "x" * 2001}, "2,001 characters exceeds max_query_chars (2,000)"),
    (
        "metadata",
        {"text": "hi", "metadata": {"obj": NotJson()}},
        "metadata must be JSON-serialisable",
    ),
    (
        "long key",
        {"text": "hi", "idempotency_key": "k" * 201},
        "idempotency_key must be a non-empty string of at most 200 characters",
    ),
    (
        "empty key",
        {"text": "hi", "idempotency_key": ""},
        "idempotency_key must be a non-empty string",
    ),
]


@pytest.mark.parametrize(
    ("fields", "message"),
    [(fields, message) for _, fields, message in BAD_SUBMISSIONS],
    ids=[case for case, _, _ in BAD_SUBMISSIONS],
)
def test_bad_input_is_rejected_before_anything_is_written(
    small_client: Client, ledger: Ledger, broker_url: str, fields: dict[str, Any], message: str
) -> None:
    options = dict(fields)
    text = options.pop("text")
    with pytest.raises(InvalidQueryError) as raised:
        small_client.submit(text, **options)
    assert message in str(raised.value)
    assert str(raised.value).startswith("query: ")
    assert row_counts(ledger) == (0, 0)
    assert redis.Redis.from_url(broker_url).dbsize() == 0


# Input that Postgres would refuse (JSONB has no NaN, text has no NUL, user_id is 200 chars):
# the client must reject it first, with its own message, so submit never raises a DB error.
POSTGRES_REJECTS: list[tuple[str, dict[str, Any]]] = [
    ("nan-metadata", {"text": "hi", "metadata": {"x": float("nan")}}),
    ("nul-in-text", {"text": "a\x00b"}),
    ("nul-in-metadata", {"text": "hi", "metadata": {"x": "a\x00b"}}),
    ("long-user", {"text": "hi", "user": "u" * 201}),
]


@pytest.mark.parametrize(
    "fields", [fields for _, fields in POSTGRES_REJECTS], ids=[case for case, _ in POSTGRES_REJECTS]
)
def test_input_postgres_cannot_store_is_an_invalid_query(
    small_client: Client, ledger: Ledger, fields: dict[str, Any]
) -> None:
    options = dict(fields)
    text = options.pop("text")
    try:
        small_client.submit(text, **options)
    except InvalidQueryError:
        pass
    except Exception as error:
        raise AssertionError(f"{type(error).__name__} instead of InvalidQueryError") from error
    else:
        raise AssertionError("accepted")
    assert row_counts(ledger) == (0, 0)


def test_a_query_that_fits_the_small_ladder_is_accepted(
    small_client: Client, ledger: Ledger
) -> None:
    # the boundary of the test above: the same client accepts a short query
    handle = small_client.submit("hello world " * 5)
    assert handle.created
    assert row_counts(ledger) == (1, 1)


def test_submit_many_with_one_bad_item_writes_nothing(
    small_client: Client, ledger: Ledger, broker_url: str
) -> None:
    items: list[Any] = ["first question", {"text": "   "}, "third question"]
    with pytest.raises(InvalidQueryError, match=r"query #1: text is empty"):
        small_client.submit_many(items)
    assert row_counts(ledger) == (0, 0)
    assert redis.Redis.from_url(broker_url).dbsize() == 0


def test_status_of_unknown_or_malformed_ids(small_client: Client) -> None:
    missing = uuid.uuid4()
    with pytest.raises(UnknownQueryError, match=str(missing)):
        small_client.status(missing)
    with pytest.raises(UnknownQueryError):
        small_client.status(str(missing))
    with pytest.raises(InvalidQueryError, match="'not-a-uuid' is not a query id"):
        small_client.status("not-a-uuid")
    with pytest.raises(InvalidQueryError):
        small_client.handle("not-a-uuid")


# -- with a worker ---------------------------------------------------------------------------------


def test_submit_and_wait_through_a_real_worker(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: Ledger
) -> None:
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        stack.start_worker("--concurrency", "2")
        with Client(stack.settings) as client:
            # When a query is submitted and awaited
            handle = client.submit("What is the boiling point of water at altitude?")
            result = handle.wait(timeout=30)

            # Then the result carries the answer, where it came from, and what it cost
            assert handle.created
            assert result.query_id == handle.query_id
            assert result.ok, result.reason
            assert result.answer
            assert result.tier_path and set(result.tier_path) <= {"cheap", "mid", "frontier"}
            assert result.final_tier == result.tier_path[-1]
            assert result.final_model == stack.settings.tier(result.final_tier).model
            assert result.escalations == len(result.tier_path) - 1
            assert result.hops[0].kind == "route"
            assert result.total_cost > 0
            assert result.total_cost == sum((hop.cost for hop in result.hops), Decimal(0))
            assert client.status(handle.query_id) == result

            # And an idempotent resubmission returns the same query, not a new one
            first = client.submit("Summarise Hamlet.", idempotency_key="order-42")
            again = client.submit("Summarise Hamlet.", idempotency_key="order-42")
            assert first.created and not again.created
            assert again.query_id == first.query_id
            assert again.wait(timeout=30) == first.wait(timeout=30)

    assert row_counts(ledger)[0] == 2


def test_wait_without_workers_times_out_with_a_hint(offline_client: Client) -> None:
    handle = offline_client.submit("Nobody is listening.")
    with pytest.raises(TimeoutError) as raised:
        handle.wait(timeout=0.2, poll_interval=0.05)
    message = str(raised.value)
    assert str(handle.query_id) in message and "still queued" in message
    assert "workers" in message


def test_wait_is_woken_by_the_ledger_when_the_query_closes(offline_client: Client) -> None:
    # Given a waiter that would re-read the ledger only once a minute
    handle = offline_client.submit("Closed from elsewhere.")
    closer = threading.Timer(
        0.3, lambda: offline_client.ledger.fail_query(handle.query_id, "closed by the test")
    )
    closer.start()
    started = time.monotonic()
    # When another process's transaction closes the query
    result = handle.wait(timeout=120, poll_interval=60)
    closer.join()
    # Then the close's NOTIFY woke the waiter: it did not sit out its poll interval
    assert result.status == "failed" and result.reason == "closed by the test"
    assert time.monotonic() - started < 30


# -- what reaches the broker -----------------------------------------------------------------------


def broker_contents(client: redis.Redis) -> list[bytes]:
    """Every key and value in the Redis database, with base64 message bodies decoded too."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key).decode()
        if kind == "string":
            found.append(client.get(key) or b"")
        elif kind == "list":
            found.extend(client.lrange(key, 0, -1))
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                found.extend((field, value))
        elif kind == "set":
            found.extend(client.smembers(key))
        elif kind == "zset":
            found.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            for entry_id, entry in client.xrange(key):
                found.append(entry_id)
                for field, value in entry.items():
                    found.extend((field, value))
        else:  # pragma: no cover - kombu uses only the types above
            raise AssertionError(f"unexpected Redis type {kind} for {key!r}")
    decoded = []
    for value in found:
        try:
            message = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(message, dict) and isinstance(message.get("body"), str):
            try:
                decoded.append(base64.b64decode(message["body"], validate=True))
            except (binascii.Error, ValueError):
                decoded.append(message["body"].encode())
    return found + decoded


def test_prompts_and_metadata_never_reach_the_broker(
    offline_client: Client, broker_url: str
) -> None:
    marker = f"secret-{uuid.uuid4().hex}"
    handle = offline_client.submit(
        f"My password is {marker}; what should I do?",
        metadata={"note": marker},
        user=f"user-{marker}",
    )

    client = redis.Redis.from_url(broker_url)
    try:
        contents = broker_contents(client)
    finally:
        client.close()
    assert contents, "nothing was published"
    assert any(str(handle.query_id).encode() in value for value in contents)
    leaked = [value[:200] for value in contents if marker.encode() in value]
    assert not leaked, f"the query's text reached the broker: {leaked}"
