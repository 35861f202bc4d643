"""Splitting long documents for map-reduce summarization. Pure: no I/O, no model calls.

A document longer than a tier's context window cannot be summarised in one call, so it is cut into
chunks that are summarised in parallel (map) and the partial summaries are combined by a final hop
(reduce). Cuts fall on the most natural boundary that still fits: paragraphs, then sentences, then
words, and only for a single unbroken run of text (a base64 blob, say) on characters.

Token counts are not additive: the tokens of ``a + b`` differ from those of ``a`` plus those of
``b`` because BPE merges across the join and separators cost tokens too. Every chunk is therefore
measured as a whole with the real counter before it is accepted, never estimated from its parts.

Each chunk is a contiguous slice of the original text (``text[start_char:end_char]``), so a partial
summary can always be traced back to the passage it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from routeq.tokens import count_tokens, prompt_budget

__all__ = ["Chunk", "chunk_budget", "plan_reduce", "split_text"]

Counter = Callable[[str], int]
Span = tuple[int, int]

# A blank line (possibly holding spaces) separates paragraphs.
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# Sentence end: terminal punctuation, optional closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
_WHITESPACE = re.compile(r"\s+")
# Words whose trailing period rarely ends a sentence. Deliberately short: a missed sentence break
# only makes a unit larger, and an oversized unit is split further down anyway.
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e"})


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, small enough for a single model call.

    ``text == original[start_char:end_char]``; the offsets let a partial summary be traced back
    to its source passage. ``tokens`` is the real count of ``text`` under the counter used.
    """

    index: int
    text: str
    tokens: int
    start_char: int
    end_char: int


def split_text(
    text: str,
    max_tokens: int,
    *,
    count: Counter = count_tokens,
    overlap_sentences: int = 0,
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens, in order.

    Units are packed greedily: as many whole paragraphs as fit; a paragraph too long on its own
    is cut into sentences, a sentence too long into words, a word too long into characters. So a
    cut falls mid-paragraph only when the paragraph cannot fit anywhere.

    With ``overlap_sentences=n`` each chunk after the first starts by repeating the last ``n``
    sentences of the previous chunk, giving the summariser context across the cut. The overlap is
    shortened (down to none) when it would push a chunk over ``max_tokens``.

    Whitespace and separators at chunk boundaries are dropped; with no overlap the chunks cover
    every non-whitespace character of ``text`` exactly once. Empty or blank text gives ``[]``.

    Raises ValueError if ``max_tokens < 1``, ``overlap_sentences < 0``, or a single character
    alone costs more than ``max_tokens`` tokens (no split could then fit).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if overlap_sentences < 0:
        raise ValueError(f"overlap_sentences must be 0 or more, got {overlap_sentences}")
    whole = _strip(text, 0, len(text))
    if whole is None:
        return []

    measured: dict[Span, int] = {}

    def measure(start: int, end: int) -> int:
        # Galloping probes the same spans more than once; counting is the expensive part.
        key = (start, end)
        if key not in measured:
            measured[key] = count(text[start:end])
        return measured[key]

    if measure(*whole) <= max_tokens:
        return [_chunk(0, text, whole, measure)]

    units = _units(text, whole, max_tokens, measure)
    unit_ends = [end for _, end in units]
    spans: list[Span] = []
    i = 0
    while i < len(units):
        unit_start = units[i][0]
        starts = _overlap_starts(text, spans[-1], overlap_sentences) if spans else []
        for start in [*starts, unit_start]:
            if measure(start, units[i][1]) <= max_tokens:
                break
        # The loop always breaks: with no overlap, units[i] fits on its own by construction.
        last = _furthest_fitting(start, unit_ends, i, max_tokens, measure)
        spans.append((start, unit_ends[last]))
        i = last + 1
    return [_chunk(index, text, span, measure) for index, span in enumerate(spans)]


def plan_reduce(partial_token_counts: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Group partial summaries (by index) into reduce calls that each fit ``max_tokens``.

    Greedy and order-preserving, so every group is a run of adjacent partials and the combined
    summary keeps the document's order. One group means a single final reduce; several mean the
    partials together are still too long, and the caller reduces each group and plans again on
    the results (a multi-level reduce).

    Counts are summed, so include per-partial separator or framing tokens in each count. Raises
    ValueError when ``max_tokens < 1``, a count is negative, or a single partial exceeds
    ``max_tokens`` (it would need splitting again, not grouping).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    groups: list[list[int]] = []
    total = 0
    for index, tokens in enumerate(partial_token_counts):
        if tokens < 0:
            raise ValueError(f"partial {index} has a negative token count ({tokens})")
        if tokens > max_tokens:
            raise ValueError(
                f"partial {index} has {tokens} tokens, more than max_tokens={max_tokens}; "
                "split it before reducing"
            )
        if groups and total + tokens <= max_tokens:
            groups[-1].append(index)
            total += tokens
        else:
            groups.append([index])
            total = tokens
    return groups


def chunk_budget(
    context_window: int, max_output_tokens: int, prompt_overhead_tokens: int, margin: float = 0.0
) -> int:
    """Tokens of document text that fit in one call to a tier.

    Mirrors ``routeq.policies.ladder.fits``: the prompt (instructions plus text), raised by the
    tier's token ``margin``, and the reserved answer must together stay within the context
    window. Raises ValueError when nothing is left for the text, or when an argument is
    negative.
    """
    if min(context_window, max_output_tokens, prompt_overhead_tokens) < 0:
        raise ValueError(
            "token counts must not be negative: "
            f"context_window={context_window}, max_output_tokens={max_output_tokens}, "
            f"prompt_overhead_tokens={prompt_overhead_tokens}"
        )
    budget = prompt_budget(context_window, max_output_tokens, margin) - prompt_overhead_tokens
    if budget <= 0:
        raise ValueError(
            f"no room for document text: context_window={context_window} - "
            f"max_output_tokens={max_output_tokens}, with a margin of {margin:.0%}, leaves "
            f"{budget + prompt_overhead_tokens} tokens of prompt, "
            f"prompt_overhead_tokens={prompt_overhead_tokens} of them instructions"
        )
    return budget


def _chunk(index: int, text: str, span: Span, measure: Callable[[int, int], int]) -> Chunk:
    start, end = span
    return Chunk(index, text[start:end], measure(start, end), start, end)


def _strip(text: str, start: int, end: int) -> Span | None:
    """``(start, end)`` narrowed to exclude surrounding whitespace; None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _split_at(text: str, span: Span, pattern: re.Pattern[str]) -> list[Span]:
    """Stripped, non-empty pieces of ``span`` between matches of a separator ``pattern``."""
    start, end = span
    pieces: list[Span] = []
    cursor = start
    for match in pattern.finditer(text, start, end):
        piece = _strip(text, cursor, match.start())
        if piece:
            pieces.append(piece)
        cursor = match.end()
    piece = _strip(text, cursor, end)
    if piece:
        pieces.append(piece)
    return pieces


def _paragraphs(text: str, span: Span) -> list[Span]:
    return _split_at(text, span, _PARAGRAPH_BREAK)


def _sentences(text: str, span: Span) -> list[Span]:
    """Sentences of a paragraph, split after ``.``, ``!`` or ``?`` followed by whitespace."""
    start, end = span
    sentences: list[Span] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if _is_abbreviation(text, cursor, match.start(), match.group()):
            continue
        piece = _strip(text, cursor, match.end())
        if piece:
            sentences.append(piece)
        cursor = match.end()
    piece = _strip(text, cursor, end)
    if piece:
        sentences.append(piece)
    return sentences


def _is_abbreviation(text: str, floor: int, dot: int, terminator: str) -> bool:
    """Whether the period at ``dot`` closes an abbreviation or initial rather than a sentence."""
    if terminator.rstrip("\"'\u201d\u2019)]") != ".":
        return False
    word_start = dot
    while word_start > floor and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lstrip("(\"'\u201c\u2018[").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _units(
    text: str, span: Span, max_tokens: int, measure: Callable[[int, int], int]
) -> list[Span]:
    """The coarsest pieces of ``span`` that each fit ``max_tokens`` on their own, in order."""
    units: list[Span] = []
    for paragraph in _paragraphs(text, span):
        if measure(*paragraph) <= max_tokens:
            units.append(paragraph)
            continue
        for sentence in _sentences(text, paragraph):
            if measure(*sentence) <= max_tokens:
                units.append(sentence)
                continue
            for word in _split_at(text, sentence, _WHITESPACE):
                if measure(*word) <= max_tokens:
                    units.append(word)
                else:
                    units.extend(_characters(text, word, max_tokens, measure))
    return units


def _characters(
    text: str, span: Span, max_tokens: int, measure: Callable[[int, int], int]
) -> list[Span]:
    """Hard cuts of an unbroken run of text into the longest prefixes that fit."""
    start, end = span
    pieces: list[Span] = []
    while start < end:
        if measure(start, start + 1) > max_tokens:
            raise ValueError(
                f"character {text[start]!r} at offset {start} alone is "
                f"{measure(start, start + 1)} tokens, more than max_tokens={max_tokens}"
            )
        ends = range(start + 1, end + 1)
        stop = ends[_furthest_fitting(start, ends, 0, max_tokens, measure)]
        pieces.append((start, stop))
        start = stop
    return pieces


def _furthest_fitting(
    start: int,
    ends: Sequence[int],
    first: int,
    max_tokens: int,
    measure: Callable[[int, int], int],
) -> int:
    """The largest ``k >= first`` found with ``text[start:ends[k]]`` within ``max_tokens``.

    ``ends`` is ascending and ``ends[first]`` must fit. Gallops (first+1, +2, +4, ...) then
    bisects, so the cost scales with the size of the answer, not of the document. Assumes counts
    grow with length; where they do not, the answer may stop short of the true maximum but it is
    always a span that was measured and fits.
    """
    good, bad, step = first, len(ends), 1
    while good + step < bad:
        if measure(start, ends[good + step]) > max_tokens:
            bad = good + step
            break
        good += step
        step *= 2
    while bad - good > 1:
        middle = (good + bad) // 2
        if measure(start, ends[middle]) <= max_tokens:
            good = middle
        else:
            bad = middle
    return good


def _overlap_starts(text: str, previous: Span, sentences: int) -> list[int]:
    """Candidate starts of the next chunk: before the last n, n-1, ..., 1 sentences of ``previous``.

    Longest overlap first, so the caller can back off until the chunk fits.
    """
    if sentences == 0:
        return []
    tail: list[Span] = []
    for paragraph in _paragraphs(text, previous):
        tail.extend(_sentences(text, paragraph))
    tail = tail[-sentences:]
    return [start for start, _ in tail]
