"""Token counting for routing, context-window checks and usage estimates.

Uses the cl100k BPE tables compiled into ``bpe-openai``, so counting works offline. Counts are an
estimate for non-OpenAI models; callers that record them mark them as estimated.

Counting must never raise: it runs in ``Client.submit``, in ``routeq summarize`` before anything
is registered, and in workers estimating the usage of a provider answer that came without one.
Two inputs used to make the tokenizer refuse:

- Text containing a special token's spelling (``<|endoftext|>``, ``<|fim_prefix|>``, ...).
  Providers receive such text as ordinary characters, so it is counted as ordinary text
  (``encode_ordinary``): ``<|endoftext|>`` counts as the 7 tokens of its characters, not as one
  control token and not as an error.
- Long text: ``bpe-openai`` refuses one call of 1,000,000 characters or more, or one producing
  more than 200,000 tokens. Text longer than :data:`PIECE_CHARS` is counted in pieces (see
  :func:`pieces`), so any length can be counted; 5,000,000 characters take about a second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "DEFAULT_TOKEN_MARGIN",
    "PIECE_CHARS",
    "count_message_tokens",
    "count_tokens",
    "fits_window",
    "pieces",
    "prompt_budget",
    "with_margin",
]

DEFAULT_TOKEN_MARGIN: Final = 0.2
"""Default share added to routeq's counts before comparing them with a context window.

routeq counts with cl100k; the model's own tokenizer counts differently (a small open model
counted about 18% more on the same prompts), and the server enforces its window with its own
count. A margin of a fifth covers that difference with a little to spare."""

PIECE_CHARS: Final = 50_000
"""Longest piece handed to the tokenizer in one call, in characters.

A character is at most 4 UTF-8 bytes and a token at least one byte, so a piece this long has at
most 200,000 tokens, the library's per-call token limit, and it is far below its 1,000,000
character limit. Small enough that both limits hold for any text, large enough that a long
document needs few pieces (100 for 5,000,000 characters)."""

_BOUNDARY_WINDOW: Final = 5_000
"""How far back from a piece's longest end a boundary is looked for, in characters."""

_LINE_START: Final = re.compile(r"\n(?=\S)")
"""A newline followed by a visible character: cutting after it leaves the tokens unchanged."""
_WORD_START: Final = re.compile(r"[^\S\r\n\x1c-\x1f](?=\S)")
"""A space or tab before a visible character: cutting before it leaves the tokens unchanged.
(U+001C..U+001F are whitespace to Python but not to the tokenizer, so they are no boundary.)"""


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import bpe_openai  # imported lazily: workers that never count tokens skip the table load

    return bpe_openai.get_encoding("cl100k_base")


def preload() -> None:
    """Load the tokenizer's tables now. A prefork worker calls it before its pool forks, so
    the children share the loaded tables instead of each loading them (1-5 s) on its first
    count."""
    count_tokens("warm up the tokenizer")


def pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in consecutive pieces of at most ``size`` characters, joined back it is ``text``.

    Each cut is placed, within the last :data:`_BOUNDARY_WINDOW` characters of a piece, after a
    newline that starts a non-blank line or else before the space that starts a word. cl100k's
    pre-tokenizer already splits there (BPE never merges across its pre-tokens), so such a cut
    does not change the count (checked against whole-text encodes of mixed text). Only a window
    without any whitespace (a base64 blob, a long run of CJK text) is cut at the character
    limit, where the two sides' tokens may differ from a whole-text encoding: by at most a few
    tokens per such cut.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    start, length = 0, len(text)
    while length - start > size:
        end = _cut(text, start + max(1, size - _BOUNDARY_WINDOW), start + size)
        yield text[start:end]
        start = end
    if start < length or not text:
        yield text[start:]


def _cut(text: str, low: int, high: int) -> int:
    """Where to end a piece: the last boundary in ``(low, high]``, else ``high``."""
    # endpos high + 1 lets the lookahead see the character at ``high``; every match then ends
    # (line start) or starts (word start) at most at ``high``.
    line_starts = [m.end() for m in _LINE_START.finditer(text, low, high + 1)]
    if line_starts:
        return line_starts[-1]
    word_starts = [m.start() for m in _WORD_START.finditer(text, low + 1, high + 1)]
    if word_starts:
        return word_starts[-1]
    return high


def _count(encoding: Any, piece: str) -> int:
    """Tokens of one piece; a piece the tokenizer still refuses is counted in halves.

    With :data:`PIECE_CHARS` no refusal is expected; halving keeps counting total if a future
    ``bpe-openai`` lowers its limits (every refusal it has is a ValueError).
    """
    try:
        return len(encoding.encode_ordinary(piece))
    except ValueError:
        if len(piece) < 2:
            raise
        return sum(_count(encoding, part) for part in pieces(piece, (len(piece) + 1) // 2))


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in ``text``, special-token spellings counted as plain text.

    Never refuses a string: text longer than :data:`PIECE_CHARS` is counted piece by piece,
    which equals a whole-text count except for at most a few tokens per cut that finds no
    whitespace (see :func:`pieces`).
    """
    if not text:
        return 0
    encoding = _encoding()
    return sum(_count(encoding, piece) for piece in pieces(text))


def count_message_tokens(messages: Sequence[Mapping[str, object]]) -> int:
    """Prompt tokens of a chat request: content plus a few tokens of framing per message.

    Content that is not a string (``None``, or a list of ``{"type": "text", "text": ...}``
    parts) is counted by its text parts rather than refused: the count is an estimate used
    when a provider reports no usage, and must not fail a call that already succeeded.
    """
    return sum(count_tokens(_content_text(message.get("content"))) + 4 for message in messages) + 3


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (part.get("text") if isinstance(part, Mapping) else part for part in content)
        return "".join(text for text in texts if isinstance(text, str))
    return ""


# -- fitting a context window ---------------------------------------------------------------------


def with_margin(tokens: int, margin: float) -> int:
    """``tokens`` raised by the fraction ``margin`` (0.2: a fifth more), rounded up.

    Computed exactly (``margin`` read as the decimal it was written as), so 100 tokens at 0.2
    make 120, not the 121 that ``ceil(100 * 1.2)`` gives in floating point.
    """
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    share = _fraction(margin)
    return tokens + math.ceil(tokens * share)


def fits_window(
    prompt_tokens: int, max_output_tokens: int, context_window: int, margin: float
) -> bool:
    """Whether a prompt counted at ``prompt_tokens`` by routeq, plus the ``max_output_tokens``
    the request asks for, fits ``context_window`` once the count is raised by ``margin``.

    Only the prompt gets the margin: ``max_tokens`` is a number the server takes as sent.
    """
    return with_margin(prompt_tokens, margin) + max_output_tokens <= context_window


def prompt_budget(context_window: int, max_output_tokens: int, margin: float) -> int:
    """The largest prompt, as routeq counts it, for which :func:`fits_window` holds; 0 when not
    even an empty prompt leaves room for ``max_output_tokens``."""
    room = context_window - max_output_tokens
    if room <= 0:
        return 0
    budget = math.floor(Fraction(room) / (1 + _fraction(margin)))
    # with_margin rounds up; step to the exact edge whichever way the division left it.
    while with_margin(budget + 1, margin) <= room:
        budget += 1
    while budget > 0 and with_margin(budget, margin) > room:
        budget -= 1
    return budget


def _fraction(margin: float) -> Fraction:
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite fraction >= 0, got {margin!r}")
    return Fraction(str(margin))
