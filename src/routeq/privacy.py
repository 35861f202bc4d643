"""What of a query's text routeq keeps: in full, redacted, or nothing (pure rules, no I/O).

The mode is decided once, at submission, from ``[privacy]`` (the deployment's mode, overridden
for queries whose metadata carries a configured tag), and stored on the query, so workers, the
reconciler and a later change of configuration agree on it (docs/privacy.md):

- ``full``: prompts and answers are stored as given.
- ``redact``: the configured patterns (e-mail addresses, credential-shaped keys, long digit
  runs, or regular expressions of the deployment's own) are replaced before anything is stored,
  in the prompt (so the model never sees them either), in every answer and in judge replies.
- ``none``: the prompt is held only while the query is live (the workers must read it) and
  every text is erased when it closes, keeping its SHA-256 and its token counts; the final
  answer stays readable for ``answer_hold_s``, for the producer to collect, then the
  reconciler erases it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from routeq.config import PrivacyConfig
from routeq.records import NewQuery
from routeq.tokens import count_message_tokens, count_tokens

# Built-in patterns, by the name ``[privacy] redact`` lists them under.
BUILTIN_PATTERNS: dict[str, str] = {
    "email": r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
    # Provider keys (sk-..., pk_..., ghp_..., xoxb-...) and long opaque tokens.
    "key": r"\b(?:sk|pk|rk|ghp|gho|xox[abpr])[-_][A-Za-z0-9_-]{8,}|\b[A-Za-z0-9_-]{32,}\b",
    # Runs of six or more digits (accounts, cards, phone numbers), spaces or dashes inside;
    # shorter numbers (amounts, years, arithmetic) are kept: questions need them.
    "number": r"(?<!\w)(?<!\d\.)\d(?:[ -]?\d){5,}(?!\w)(?!\.\d)",
}


def mode_for(config: PrivacyConfig, metadata: Mapping[str, Any]) -> str:
    """The privacy mode of a query with ``metadata``: the first tag rule it matches, else the
    deployment's."""
    for rule in config.tags:
        if str(metadata.get(rule.tag, "")) == rule.value and rule.tag in metadata:
            return rule.mode
    return config.mode


Redactor = list[tuple[re.Pattern[str], str]]


def redactor(config: PrivacyConfig) -> Redactor:
    """What ``config`` redacts: each pattern, compiled on its own (a deployment's patterns may
    use groups and backreferences of their own), with its replacement (``[email]``, ``[key]``,
    ``[number]``; ``[redacted]`` for the deployment's patterns). Built-ins first."""
    found = [(re.compile(BUILTIN_PATTERNS[name]), f"[{name}]") for name in config.redact]
    return found + [(re.compile(pattern), "[redacted]") for pattern in config.patterns]


def redact(text: str, patterns: Redactor) -> str:
    """``text`` with every match of each pattern replaced, in turn."""
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return text


def private_query(config: PrivacyConfig, item: NewQuery) -> NewQuery:
    """``item`` as it may be stored: its mode decided, its texts redacted under ``redact``
    (tokens counted again), and, under ``none``, no cache key: an erased answer cannot be
    reused for another query."""
    mode = mode_for(config, item.metadata)
    if mode == "full":
        return item
    if mode == "none":
        return replace(item, privacy=mode, cache_key=None)
    pattern = redactor(config)
    text = redact(item.text, pattern)
    messages = None
    if item.messages is not None:
        messages = [{**turn, "content": redact(turn["content"], pattern)} for turn in item.messages]
    tokens = count_message_tokens(messages) if messages is not None else count_tokens(text)
    return replace(item, text=text, messages=messages, input_tokens=tokens, privacy=mode)
