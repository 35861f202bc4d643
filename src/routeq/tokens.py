"""Token counting for routing, context-window checks and usage estimates.

Uses the cl100k BPE tables compiled into ``bpe-openai``, so counting works offline. Counts are an
estimate for non-OpenAI models; callers that record them mark them as estimated.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import bpe_openai  # imported lazily: workers that never count tokens skip the table load

    return bpe_openai.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in ``text``."""
    if not text:
        return 0
    return len(_encoding().encode(text))


def count_message_tokens(messages: list[dict[str, str]]) -> int:
    """Prompt tokens of a chat request: content plus a few tokens of framing per message."""
    return sum(count_tokens(message.get("content", "")) + 4 for message in messages) + 3
