"""Recognising a provider's "the prompt does not fit the context window" answer. Pure.

Every server says it differently, and most say it with a plain HTTP 400 that otherwise means "bad
request", so the error's own words decide. The shapes recognised (status 4xx or 5xx, not 429):

- OpenAI, Azure, Groq, LiteLLM: ``code: "context_length_exceeded"``; "This model's maximum
  context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000
  in the completion)", or "Your input exceeds the context window of this model".
- vLLM: the same "maximum context length is N tokens" sentence (older releases put it in a
  top-level ``message``), or "... and your request has N input tokens".
- Anthropic: "prompt is too long: 215000 tokens > 200000 maximum".
- llama.cpp's server: ``type: "exceed_context_size_error"`` with ``n_ctx`` and
  ``n_prompt_tokens``; "request (4476 tokens) exceeds the available context size (4096 tokens)".
- Ollama: "prompt too long", "the input length exceeds the context length".
- Mistral ("too large for model with N maximum context length"), Hugging Face TGI ("`inputs`
  tokens + `max_new_tokens` must be <= N"), Gemini's OpenAI endpoint ("The input token count (N)
  exceeds the maximum number of tokens allowed (M)").

The phrases are specific enough that an unrelated error does not match ("maximum context
length", never "too long" alone): a false match would only turn one permanent error into another,
but a missed one leaves the caller unable to cut the prompt and try again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from routeq.errors import ContextLengthExceededError

__all__ = ["context_length_error", "is_context_length_message"]

_CODES: Final = frozenset(
    {"context_length_exceeded", "exceed_context_size_error", "context_window_exceeded"}
)
"""Machine-readable codes (``error.code`` or ``error.type``) that mean exactly this."""

_PHRASES: Final = re.compile(
    r"maximum context length"
    r"|context[ _]length[ _]exceeded"
    r"|exceeds? (?:the |your )?(?:available |model'?s? )?context (?:size|length|window)"
    r"|context window (?:is )?(?:exceeded|full)"
    r"|prompt (?:is )?too long"
    r"|input (?:is )?too long for (?:the )?(?:requested )?model"
    r"|input length exceeds"
    r"|reduce the length of the messages"
    r"|`inputs` tokens \+ `max_new_tokens` must be"
    r"|input token count \(\d+\) exceeds the maximum",
    re.IGNORECASE,
)

_WINDOW_PATTERNS: Final = (
    re.compile(r"maximum context length (?:is|of) (\d+)", re.IGNORECASE),
    re.compile(r"available context size \((\d+) tokens?\)", re.IGNORECASE),
    re.compile(r"\d+ tokens? > (\d+) maximum", re.IGNORECASE),  # Anthropic
    re.compile(r"model with (\d+) maximum context length", re.IGNORECASE),  # Mistral
    re.compile(r"must be <= (\d+)", re.IGNORECASE),  # TGI
    re.compile(r"maximum number of tokens allowed \((\d+)\)", re.IGNORECASE),  # Gemini
    re.compile(r"context window of (\d+)", re.IGNORECASE),
)
_PROMPT_PATTERNS: Final = (
    re.compile(r"(\d+) in the messages", re.IGNORECASE),  # OpenAI, vLLM
    re.compile(r"request has (\d+) input tokens", re.IGNORECASE),  # vLLM
    re.compile(r"prompt is too long: (\d+) tokens", re.IGNORECASE),  # Anthropic
    re.compile(r"prompt contains (\d+) tokens", re.IGNORECASE),  # Mistral
    re.compile(r"given: (\d+) `inputs` tokens", re.IGNORECASE),  # TGI
    re.compile(r"input token count \((\d+)\)", re.IGNORECASE),  # Gemini
)


def is_context_length_message(text: str) -> bool:
    """Whether an error text says the prompt does not fit the model's context window."""
    return _PHRASES.search(text) is not None


def context_length_error(status: int, body: Any, detail: str) -> ContextLengthExceededError | None:
    """A :class:`ContextLengthExceededError` when an HTTP error response says the prompt is too
    long for the model, else None.

    ``body`` is the decoded JSON body (or the raw text when it was not JSON); ``detail`` is the
    provider's message already scrubbed of secrets, the only text that goes into the error. A
    429 is never one: it is a rate limit on tokens per minute, which waiting does fix.
    """
    if status < 400 or status == 429:
        return None
    texts = list(_texts(body))
    coded = any(text.strip().lower() in _CODES for text in texts)
    if not coded and not any(is_context_length_message(text) for text in [*texts, detail]):
        return None
    joined = "\n".join(texts)
    return ContextLengthExceededError(
        f"HTTP {status} context length exceeded: {detail}",
        status_code=status,
        context_window=_field(body, "n_ctx") or _first_number(_WINDOW_PATTERNS, joined),
        prompt_tokens=_field(body, "n_prompt_tokens") or _first_number(_PROMPT_PATTERNS, joined),
    )


def _texts(body: Any) -> Iterator[str]:
    """The strings of an error body that can name the problem: the top level's and those of
    its ``error`` object (message, code, type), or the whole body when it is text."""
    if isinstance(body, str):
        yield body
        return
    if not isinstance(body, dict):
        return
    for part in (body, body.get("error")):
        if isinstance(part, str):
            yield part
        elif isinstance(part, dict):
            for key in ("message", "code", "type", "detail", "error_type", "error"):
                value = part.get(key)
                if isinstance(value, str):
                    yield value


def _field(body: Any, name: str) -> int | None:
    """An integer field of the body's ``error`` object (llama.cpp reports ``n_ctx`` there)."""
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _first_number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match is not None:
            return int(match.group(1))
    return None
