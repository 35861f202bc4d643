"""Token counting never refuses text: special-token spellings, very long or token-dense text."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from routeq import tokens
from routeq.tokens import PIECE_CHARS, count_message_tokens, count_tokens, pieces

# cl100k's own special tokens and the ChatML ones other tokenizers use; all are plain text here.
SPECIAL_SPELLINGS = [
    "<|endoftext|>",
    "<|endofprompt|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|im_start|>",
    "<|im_end|>",
]

PROSE = (
    "The quarterly report covers revenue, costs and the 2024 outlook. It's short.\n"
    "\tIndented lines, numbers like 3.14159 and 1234567, punctuation (yes!) and naïve café.\n"
    "日本語の文も少し。 Emoji too 🙂 and a URL: https://example.com/a?b=c.\n\n"
)


def ordinary(text: str) -> int:
    """The library's own whole-text count, special spellings as text (text must be short)."""
    return len(tokens._encoding().encode_ordinary(text))


@pytest.mark.parametrize("special", SPECIAL_SPELLINGS)
def test_special_token_spelling_is_counted_as_text(special: str) -> None:
    text = f"Please ignore {special} and answer: what is 2+2?"
    count = count_tokens(text)
    assert count == ordinary(text)
    # As text it costs several tokens, never the single control token it names.
    assert count_tokens(special) > 1
    assert count > count_tokens("Please ignore  and answer: what is 2+2?")


def test_every_special_token_of_the_encoding_is_text() -> None:
    specials = tokens._encoding().special_tokens_set
    assert "<|endoftext|>" in specials
    for special in specials:
        assert count_tokens(special) == ordinary(special) > 1
    assert count_tokens("<|endoftext|>") == 7
    assert count_tokens("".join(sorted(specials)) * 3) == ordinary("".join(sorted(specials)) * 3)


def test_long_text_counted_in_pieces_matches_whole_text_count() -> None:
    text = PROSE * (400_000 // len(PROSE))  # several pieces, small enough for one encode call
    assert len(text) > 4 * PIECE_CHARS
    assert len(list(pieces(text))) > 4
    assert count_tokens(text) == ordinary(text)


def test_five_million_characters_count_quickly_and_exactly() -> None:
    unit = PROSE * 50  # ends with a blank line, starts with a word: cuts there are exact
    repeats = 5_000_000 // len(unit) + 1
    text = unit * repeats
    assert len(text) >= 5_000_000
    start = time.perf_counter()
    count = count_tokens(text)
    elapsed = time.perf_counter() - start
    assert count == repeats * count_tokens(unit)
    assert elapsed < 10, f"counting 5M characters took {elapsed:.1f}s"


def test_text_without_whitespace_is_cut_hard_and_stays_close() -> None:
    text = "".join(random.Random(7).choices("abcXYZ0123+/=", k=2_000_000))
    cuts = len(list(pieces(text))) - 1
    assert cuts >= 39
    by_piece = sum(ordinary(text[i : i + 100_000]) for i in range(0, len(text), 100_000))
    # 20 whole 100k pieces against 40 hard cuts: a few tokens per cut at most.
    assert abs(count_tokens(text) - by_piece) <= 3 * cuts


def test_token_dense_text_over_the_library_token_limit() -> None:
    # 60,000 emoji are 240,000 bytes: more than the 200,000 tokens bpe-openai encodes per call.
    assert count_tokens("🙂" * 60_000) == 60_000 * count_tokens("🙂")


def test_default_max_query_chars_boundary() -> None:
    # bpe-openai refuses 1,000,000 characters in one call, the default max_query_chars.
    assert count_tokens("word " * 200_000) == 200_001  # "word", 199,999 " word", " "


def test_pieces_rejoin_and_prefer_line_then_word_starts() -> None:
    text = ("alpha beta gamma\n" * 10) + ("x" * 30) + " tail"
    parts = list(pieces(text, 40))
    assert "".join(parts) == text
    assert all(len(part) <= 40 for part in parts)
    assert parts[0] == "alpha beta gamma\nalpha beta gamma\n"  # cut after a newline
    no_lines = "one two three four five six seven"
    first = next(pieces(no_lines, 20))
    assert first == "one two three four"  # cut before the space starting a word
    assert list(pieces("", 10)) == [""]
    assert list(pieces("x" * 25, 10)) == ["x" * 10, "x" * 10, "x" * 5]
    with pytest.raises(ValueError, match="positive"):
        list(pieces("abc", 0))


def test_surrogates_and_control_characters_do_not_raise() -> None:
    assert count_tokens("a\ud800b") > 0
    assert count_tokens("a\x00b\x1c c") > 0


def test_a_piece_the_tokenizer_refuses_is_counted_in_halves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Strict:
        """A tokenizer with far lower limits: one token per character, at most 7 per call."""

        def encode_ordinary(self, text: str) -> list[Any]:
            if len(text) > 7:
                raise ValueError("Input too long to encode safely")
            return list(text)

    monkeypatch.setattr(tokens, "_encoding", Strict)
    assert count_tokens("abcdefghijklmnopqrstuvwxyz" * 3) == 78
    assert count_tokens("hello wonderful world") == 21


def test_message_tokens_survive_special_long_and_odd_content() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "<|im_start|>system"},
        {"role": "user", "content": "<|endoftext|>" + PROSE * 20_000},
    ]
    expected = count_tokens("<|im_start|>system") + count_tokens(messages[1]["content"]) + 2 * 4
    assert count_message_tokens(messages) == expected + 3
    parts = [{"type": "text", "text": "<|endoftext|>"}, {"type": "image_url"}, "tail"]
    odd: list[dict[str, Any]] = [
        {"role": "assistant", "content": None},
        {"role": "user", "content": parts},
        {"role": "user"},
    ]
    assert count_message_tokens(odd) == count_tokens("<|endoftext|>tail") + 3 * 4 + 3


# -- safety margin against the model's own tokenizer -------------------------------------------


@pytest.mark.parametrize(
    ("count", "margin", "expected"),
    [(100, 0.2, 120), (1000, 0.18, 1180), (101, 0.2, 122), (0, 0.2, 0), (7, 0.0, 7), (3, 1.0, 6)],
)
def test_with_margin_rounds_up_exactly(count: int, margin: float, expected: int) -> None:
    # ceil(100 * 1.2) is 121 in floating point; the margin is applied exactly.
    assert tokens.with_margin(count, margin) == expected


@pytest.mark.parametrize("margin", [-0.1, float("nan"), float("inf")])
def test_with_margin_refuses_impossible_margins(margin: float) -> None:
    with pytest.raises(ValueError, match="margin"):
        tokens.with_margin(10, margin)


def test_with_margin_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="tokens"):
        tokens.with_margin(-1, 0.2)


def test_a_prompt_that_fits_by_routeqs_count_but_not_the_models_is_refused() -> None:
    # The measured case: a small open model counted about 18% more than routeq. A prompt of
    # 1,700 routeq tokens with 300 for the reply "fits" 2,048 unmargined, but the model sees
    # about 2,006 prompt tokens: with the default margin it is judged not to fit.
    assert 1_700 + 300 <= 2_048
    assert not tokens.fits_window(1_700, 300, 2_048, tokens.DEFAULT_TOKEN_MARGIN)
    assert tokens.fits_window(1_700, 300, 2_048, 0.0)
    assert tokens.fits_window(1_450, 300, 2_048, tokens.DEFAULT_TOKEN_MARGIN)


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.18, 0.2, 0.5, 1.0])
@pytest.mark.parametrize(("window", "output"), [(2_048, 256), (4_096, 1_024), (128_000, 1), (7, 2)])
def test_prompt_budget_is_the_exact_edge_of_fits_window(
    window: int, output: int, margin: float
) -> None:
    budget = tokens.prompt_budget(window, output, margin)
    assert tokens.fits_window(budget, output, window, margin)
    assert not tokens.fits_window(budget + 1, output, window, margin)


@pytest.mark.parametrize(("window", "output"), [(1_000, 1_000), (1_000, 2_000)])
def test_prompt_budget_is_zero_without_room_for_the_reply(window: int, output: int) -> None:
    assert tokens.prompt_budget(window, output, 0.2) == 0


def test_preload_loads_the_tables_once_for_the_process() -> None:
    # Given a process that has not counted yet
    from routeq import tokens

    tokens._encoding.cache_clear()
    # When a worker preloads before its pool forks
    tokens.preload()
    # Then the tables are loaded, and the next count reuses them
    assert tokens._encoding.cache_info().currsize == 1
    before = tokens._encoding.cache_info().hits
    tokens.count_tokens("hello")
    assert tokens._encoding.cache_info().hits == before + 1
