"""Planning map-reduce summarization of long documents. Pure: no I/O, no model calls.

A document longer than one call can take is split into *parts* (stage 0), summarised in
parallel; their summaries are then grouped into *combine* calls (stage 1), and, should those
still be too many to fit one call, combined again (stage 2, ...), until one summary is left.
Each piece becomes a child query of the document with its own hops, so every piece is routed,
judged and escalated like any other query and its cost lands in the ledger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from routeq.config import SummarizeConfig, TierConfig
from routeq.summarize.chunking import chunk_budget, plan_reduce, split_text
from routeq.summary_spec import SummarySpec, SummaryTask, combine_text, summary_messages
from routeq.tokens import count_tokens

# Tokens around each partial in a combine input ("Part 12 summary:\n" and the blank line).
_LABEL_TOKENS = 8
# Chat framing per message, on top of the text (role markers and separators).
_FRAMING_TOKENS = 16


@dataclass(frozen=True)
class Piece:
    """A child query to create: its text, the text's token count and its task."""

    text: str
    tokens: int
    task: SummaryTask


def piece_cache_key(piece: Piece) -> str:
    """Key under which a finished piece's summary is reused: its exact text, role and spec.
    A document that failed because one part failed is retried without paying for the rest."""
    digest = hashlib.sha256(piece.text.encode("utf-8")).hexdigest()
    return f"piece:{piece.task.role}:{digest}:{piece.task.spec.key()}"


def prompt_overhead(task: SummaryTask, tier: TierConfig) -> int:
    """Tokens the prompt adds to the text: the tier's system prompt and the instructions."""
    messages = summary_messages(task, "", tier.system_prompt)
    return sum(count_tokens(message["content"]) for message in messages) + _FRAMING_TOKENS


def part_budget(config: SummarizeConfig, task: SummaryTask, tier: TierConfig) -> int:
    """Most tokens of text one summarization call on ``tier`` should take.

    The smaller of the tier's window (less the prompt and the reserved answer) and
    ``max_chunk_tokens``: summaries of shorter passages are more faithful, and parts run in
    parallel, so a document is split even when a large window could take it whole.
    """
    window = chunk_budget(
        tier.context_window, tier.max_output_tokens, prompt_overhead(task, tier), tier.token_margin
    )
    return min(config.max_chunk_tokens, window)


def split_document(
    text: str, tokens: int, budget: int, spec: SummarySpec, overlap_sentences: int
) -> list[Piece] | None:
    """The parts of a document longer than ``budget`` tokens; None when it fits in one call."""
    if tokens <= budget:
        return None
    chunks = split_text(text, budget, overlap_sentences=overlap_sentences)
    if len(chunks) < 2:  # the exact count of the normalised text fitted after all
        return None
    return [
        Piece(
            chunk.text,
            chunk.tokens,
            SummaryTask(role="part", part=chunk.index + 1, parts=len(chunks), stage=0, spec=spec),
        )
        for chunk in chunks
    ]


def plan_combines(partials: list[str], stage: int, budget: int, spec: SummarySpec) -> list[Piece]:
    """Group the summaries of ``stage`` (in document order) into the combines of ``stage + 1``.

    Raises ValueError when a single summary is longer than ``budget`` or when grouping makes
    no progress (every group would hold one summary), since combining could then loop forever.
    """
    counts = [count_tokens(partial) + _LABEL_TOKENS for partial in partials]
    groups = plan_reduce(counts, budget)
    if len(partials) > 1 and len(groups) == len(partials):
        raise ValueError(
            f"{len(partials)} partial summaries cannot be combined within {budget} tokens per "
            "call; raise summarize.max_chunk_tokens or lower the summary's max_words"
        )
    pieces = []
    for index, group in enumerate(groups, 1):
        text = combine_text([partials[i] for i in group])
        task = SummaryTask(
            role="combine", part=index, parts=len(groups), stage=stage + 1, spec=spec
        )
        pieces.append(Piece(text, count_tokens(text), task))
    return pieces
