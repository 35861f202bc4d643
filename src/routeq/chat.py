"""Chat requests: the turns of a conversation and its generation parameters, checked once at
submission. Pure.

A chat query is routed on its last user turn (``text``) and sent to the model with all its
turns; what the ledger keeps is the turns, the parameters and that text, so reports and policies
see the same query the model saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from routeq.errors import InvalidQueryError

ROLES = ("system", "user", "assistant")
MAX_TURNS = 500
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class ChatInput:
    text: str  # the last user turn: what routing rules and policies read
    messages: list[dict[str, str]]
    params: dict[str, Any] | None

    @property
    def chars(self) -> int:
        """Characters of every turn: what ``max_query_chars`` limits."""
        return sum(len(turn["content"]) for turn in self.messages)


def chat_input(
    where: str, messages: Any, temperature: Any = None, max_tokens: Any = None
) -> ChatInput:
    """Validate chat turns and parameters, or raise ``InvalidQueryError`` saying what to fix."""
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes) or not messages:
        raise InvalidQueryError(
            f"{where}: messages must be a non-empty list of {{'role', 'content'}} turns"
        )
    if len(messages) > MAX_TURNS:
        raise InvalidQueryError(f"{where}: {len(messages)} turns exceeds {MAX_TURNS}")
    turns: list[dict[str, str]] = []
    for number, turn in enumerate(messages, 1):
        if not isinstance(turn, Mapping) or set(turn) - {"role", "content"}:
            raise InvalidQueryError(
                f"{where}: turn {number} must be a mapping with 'role' and 'content' only"
            )
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise InvalidQueryError(
                f"{where}: turn {number} has role {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise InvalidQueryError(f"{where}: turn {number}'s content must be a string")
        check_storable(f"{where}: turn {number}", content)
        turns.append({"role": role, "content": content})
    users = [turn["content"] for turn in turns if turn["role"] == "user"]
    if not users or not users[-1].strip():
        raise InvalidQueryError(f"{where}: the conversation needs a non-empty user turn")
    return ChatInput(users[-1], turns, generation_params(where, temperature, max_tokens))


def check_storable(what: str, text: str) -> None:
    """Refuse text the ledger cannot store: a NUL character, or a lone surrogate (not valid
    Unicode). ``what`` names it in the message ("query", "query #3: turn 2")."""
    if "\x00" in text:
        raise InvalidQueryError(f"{what} contains a NUL character; remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryError(
            f"{what} contains a lone surrogate at character {exc.start:,} (not valid Unicode, "
            "so the ledger cannot store it); decode the source text properly"
        ) from None


def generation_params(where: str, temperature: Any, max_tokens: Any) -> dict[str, Any] | None:
    """``temperature`` (0 to 2) and ``max_tokens`` (a positive integer), when given."""
    params: dict[str, Any] = {}
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise InvalidQueryError(f"{where}: temperature must be a number")
        if not 0 <= temperature <= MAX_TEMPERATURE:
            raise InvalidQueryError(f"{where}: temperature must be between 0 and 2")
        params["temperature"] = float(temperature)
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidQueryError(f"{where}: max_tokens must be a positive integer")
        params["max_tokens"] = max_tokens
    return params or None
