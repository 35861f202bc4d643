"""Unit tests for routeq.summarize.chunking: token-bounded splitting and reduce planning."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from itertools import pairwise

import pytest

from routeq.summarize.chunking import Chunk, chunk_budget, plan_reduce, split_text
from routeq.tokens import count_tokens, with_margin

WORDS = [
    *("routing", "queue", "ledger", "tier", "model", "summary", "context", "window", "token"),
    *("budget", "latency", "cost", "answer", "prompt", "worker", "retry", "escalation"),
    *("frontier", "cheap", "judge", "partial", "document", "paragraph", "sentence"),
]


def words(text: str) -> int:
    """A counter with obvious arithmetic: one token per whitespace-separated word."""
    return len(text.split())


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assert_valid(
    text: str, chunks: list[Chunk], max_tokens: int, count: Callable[[str], int] = count_tokens
) -> None:
    """Every chunk fits, its offsets point at its text, and together they cover ``text``."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start_char : c.end_char] == c.text
        assert c.tokens == count(c.text) <= max_tokens
        assert c.text == c.text.strip()
    assert all(a.end_char <= b.start_char for a, b in pairwise(chunks))
    assert squash("".join(text[c.start_char : c.end_char] for c in chunks)) == squash(text)


def sentence(rng: random.Random, n_words: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(n_words))
    return body[0].upper() + body[1:] + rng.choice(".!?")


def generated_text(rng: random.Random) -> str:
    """Paragraphs of varied sentence lengths, now and then a run-on sentence or a blob."""
    paragraphs = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.1:
            paragraphs.append(sentence(rng, rng.randint(80, 200)))  # needs word splits
        elif kind < 0.15:
            paragraphs.append("".join(rng.choice("abcdefXYZ0189+/") for _ in range(600)))
        else:
            sentences = [sentence(rng, rng.randint(1, 30)) for _ in range(rng.randint(1, 10))]
            paragraphs.append(rng.choice([" ", "  ", "\n"]).join(sentences))
    separators = ["\n\n", "\n \n", "\n\n\n\t"]
    text = paragraphs[0]
    for paragraph in paragraphs[1:]:
        text += rng.choice(separators) + paragraph
    return rng.choice(["", "  \n"]) + text + rng.choice(["", "\n"])


def test_blank_text_gives_no_chunks() -> None:
    assert split_text("", 10) == []
    assert split_text(" \n\n\t ", 10) == []


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_max_tokens_must_be_positive(max_tokens: int) -> None:
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        split_text("Some text.", max_tokens)


def test_negative_overlap_rejected() -> None:
    with pytest.raises(ValueError, match="overlap_sentences"):
        split_text("Some text.", 10, overlap_sentences=-1)


def test_text_that_fits_is_one_chunk() -> None:
    text = "\n  First paragraph here.\n\nSecond one.  \n"
    [chunk] = split_text(text, 100)
    assert chunk == Chunk(0, text.strip(), count_tokens(text.strip()), 3, len(text) - 3)


def test_paragraphs_are_packed_greedily() -> None:
    paragraphs = ["one two three.", "four five six.", "seven eight nine.", "ten eleven."]
    text = "\n\n".join(paragraphs)
    chunks = split_text(text, 7, count=words)
    assert [c.text for c in chunks] == ["\n\n".join(paragraphs[:2]), "\n\n".join(paragraphs[2:])]
    assert_valid(text, chunks, 7, words)


def test_paragraph_boundaries_preferred_over_sentences() -> None:
    # The second paragraph fits a chunk of its own, so it is not cut to top up the first one,
    # though its first sentence would fit there.
    text = "Aa bb cc.\n\nDd ee ff gg. Hh ii jj kk."
    chunks = split_text(text, 9, count=words)
    assert [c.text for c in chunks] == ["Aa bb cc.", "Dd ee ff gg. Hh ii jj kk."]


def test_sentences_of_an_oversized_paragraph_pack_with_the_next_paragraph() -> None:
    text = "Aa bb cc dd ee. Ff gg hh ii jj.\n\nKk ll mm nn."
    chunks = split_text(text, 9, count=words)
    assert [c.text for c in chunks] == ["Aa bb cc dd ee.", "Ff gg hh ii jj.\n\nKk ll mm nn."]


def test_long_paragraph_is_split_on_sentences() -> None:
    rng = random.Random(1)
    sentences = [sentence(rng, 12) for _ in range(20)]
    text = " ".join(sentences)
    chunks = split_text(text, 60)
    assert len(chunks) > 1
    assert_valid(text, chunks, 60)
    for c in chunks:
        assert c.text[-1] in ".!?" and c.text[0].isupper()


def test_abbreviations_do_not_end_sentences() -> None:
    text = "Dr. Smith met J. Jones. Then e.g. tea was served."
    chunks = split_text(text, 5, count=words)
    assert [c.text for c in chunks] == ["Dr. Smith met J. Jones.", "Then e.g. tea was served."]


def test_very_long_sentence_is_split_on_words() -> None:
    rng = random.Random(2)
    text = " ".join(rng.choice(WORDS) for _ in range(400))
    chunks = split_text(text, 25)
    assert len(chunks) > 10
    assert_valid(text, chunks, 25)
    for c in chunks:
        assert all(word in WORDS for word in c.text.split())


def test_huge_token_is_split_on_characters() -> None:
    text = "a" * 5000
    chunks = split_text(text, 100)
    assert len(chunks) > 1
    assert_valid(text, chunks, 100)
    assert "".join(c.text for c in chunks) == text


def test_blob_inside_prose_is_split_on_characters_only() -> None:
    blob = "QUJD" * 1500
    text = f"Here is a payload. {blob} And that is all."
    chunks = split_text(text, 200)
    assert_valid(text, chunks, 200)
    assert chunks[0].text.startswith("Here is a payload.")
    assert chunks[-1].text.endswith("And that is all.")


def test_character_costlier_than_budget_is_an_error() -> None:
    assert count_tokens("\U0001d54f") > 1
    with pytest.raises(ValueError, match="alone is"):
        split_text("\U0001d54f" * 3, 1)


@pytest.mark.parametrize("seed", range(12))
def test_generated_texts_are_covered_in_order(seed: int) -> None:
    rng = random.Random(seed)
    text = generated_text(rng)
    for max_tokens in (7, 40, 300):
        assert_valid(text, split_text(text, max_tokens), max_tokens)


@pytest.mark.parametrize("seed", range(4))
def test_custom_counter(seed: int) -> None:
    text = generated_text(random.Random(100 + seed))
    chunks = split_text(text, 120, count=len)
    assert_valid(text, chunks, 120, len)
    assert all(len(c.text) <= 120 for c in chunks)


def test_overlap_repeats_last_sentence_and_still_fits() -> None:
    # One long paragraph of short sentences: the overlap always fits, so it is never dropped.
    rng = random.Random(3)
    text = " ".join(sentence(rng, rng.randint(3, 15)) for _ in range(40))
    plain = split_text(text, 80)
    chunks = split_text(text, 80, overlap_sentences=1)
    assert len(chunks) >= len(plain) > 2
    for c in chunks:
        assert text[c.start_char : c.end_char] == c.text
        assert c.tokens == count_tokens(c.text) <= 80
    for previous, current in pairwise(chunks):
        last_sentence = re.split(r"(?<=[.!?])\s+", previous.text)[-1]
        assert current.text.startswith(last_sentence + " ")
        assert current.start_char == previous.end_char - len(last_sentence)
    # Past the repeated sentence, the chunks still cover the text in order.
    assert squash("".join(fresh_parts(text, chunks))) == squash(text)


def fresh_parts(text: str, chunks: list[Chunk]) -> list[str]:
    """Each chunk's text minus the part that repeats the previous chunk."""
    parts = [chunks[0].text]
    for previous, current in pairwise(chunks):
        parts.append(text[max(previous.end_char, current.start_char) : current.end_char])
    return parts


@pytest.mark.parametrize("seed", range(6))
def test_overlap_on_generated_texts(seed: int) -> None:
    text = generated_text(random.Random(200 + seed))
    for max_tokens in (12, 90):
        chunks = split_text(text, max_tokens, overlap_sentences=1)
        for c in chunks:
            assert text[c.start_char : c.end_char] == c.text
            assert c.tokens == count_tokens(c.text) <= max_tokens
        for previous, current in pairwise(chunks):
            assert previous.start_char < current.start_char < current.end_char
            assert previous.end_char < current.end_char
        assert squash("".join(fresh_parts(text, chunks))) == squash(text)


def test_overlap_backs_off_when_it_would_not_fit() -> None:
    text = "Aa bb cc dd ee. Ff gg hh ii jj."
    chunks = split_text(text, 5, count=words, overlap_sentences=1)
    assert [c.text for c in chunks] == ["Aa bb cc dd ee.", "Ff gg hh ii jj."]


def test_overlap_of_two_sentences() -> None:
    text = "Aa bb. Cc dd. Ee ff. Gg hh. Ii jj."
    chunks = split_text(text, 6, count=words, overlap_sentences=2)
    assert [c.text for c in chunks] == [
        "Aa bb. Cc dd. Ee ff.",
        "Cc dd. Ee ff. Gg hh.",
        "Ee ff. Gg hh. Ii jj.",
    ]


def test_plan_reduce_groups_greedily_in_order() -> None:
    assert plan_reduce([], 10) == []
    assert plan_reduce([4, 4, 4, 10, 1, 9, 0], 10) == [[0, 1], [2], [3], [4, 5, 6]]
    assert plan_reduce([3, 3, 3], 10) == [[0, 1, 2]]


def test_plan_reduce_rejects_oversized_partial() -> None:
    with pytest.raises(ValueError, match="partial 1 has 11 tokens"):
        plan_reduce([5, 11], 10)
    with pytest.raises(ValueError, match="max_tokens"):
        plan_reduce([1], 0)


def test_chunk_budget() -> None:
    assert chunk_budget(8192, 1024, 200) == 6968
    with pytest.raises(ValueError, match=r"context_window=1000.*max_output_tokens=900.*100 tok"):
        chunk_budget(1000, 900, 150)
    with pytest.raises(ValueError, match="no room"):
        chunk_budget(1000, 900, 100)
    with pytest.raises(ValueError, match="negative"):
        chunk_budget(1000, -1, 0)


def test_chunk_budget_keeps_the_tier_token_margin() -> None:
    # 2,048-token window, 300 for the answer: 1,748 left, of which 1,456 with a 20% margin
    budget = chunk_budget(2048, 300, 100, margin=0.2)
    assert budget == 1456 - 100
    assert with_margin(budget + 100, 0.2) + 300 <= 2048
