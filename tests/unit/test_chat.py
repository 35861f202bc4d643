"""Chat queries: turns and generation parameters are checked at submission and kept whole."""

from __future__ import annotations

from typing import Any

import pytest
from test_client_validation import make_client

from routeq.config import Settings
from routeq.errors import InvalidQueryError
from routeq.tokens import count_message_tokens

TURNS = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of Italy?"},
    {"role": "assistant", "content": "Rome."},
    {"role": "user", "content": "And of Spain?"},
]


def test_a_chat_is_routed_on_its_last_user_turn_and_kept_whole(settings: Settings) -> None:
    item = {"messages": TURNS, "temperature": 0.3, "max_tokens": 64}
    query = make_client(settings)._validate(0, item)
    assert query.text == "And of Spain?"
    assert query.messages == TURNS
    assert query.params == {"temperature": 0.3, "max_tokens": 64}
    assert query.input_tokens == count_message_tokens(TURNS)


def test_text_queries_keep_working_and_may_carry_parameters(settings: Settings) -> None:
    plain = make_client(settings)._validate(0, "What is 2 + 2?")
    assert plain.messages is None and plain.params is None
    tuned = make_client(settings)._validate(0, {"text": "Hi", "temperature": 0})
    assert tuned.params == {"temperature": 0.0}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": "hello"}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"messages": [{"role": "user", "content": 3}]}, "content must be a string"),
        ({"messages": [{"role": "user", "content": "x", "name": "n"}]}, "'role' and 'content'"),
        ({"messages": [{"role": "system", "content": "x"}]}, "non-empty user turn"),
        ({"messages": TURNS, "text": "also text"}, "not both"),
        ({"messages": TURNS, "temperature": 3}, "between 0 and 2"),
        ({"messages": TURNS, "temperature": "hot"}, "must be a number"),
        ({"text": "Hi", "max_tokens": 0}, "positive integer"),
        ({"text": "Hi", "max_tokens": True}, "positive integer"),
        ({"messages": [{"role": "system", "content": "a\x00b"}, *TURNS]}, "turn 1 contains a NUL"),
        ({"messages": [{"role": "user", "content": "\ud800"}, *TURNS]}, "lone surrogate"),
    ],
)
def test_bad_chats_are_refused_with_the_reason(
    settings: Settings, item: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        make_client(settings)._validate(0, item)


def test_every_turn_counts_against_max_query_chars(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_query_chars": 100})
    long_history = [{"role": "user", "content": "x" * 90}, *TURNS]
    with pytest.raises(InvalidQueryError, match="exceeds max_query_chars"):
        make_client(limited)._validate(0, {"messages": long_history})
