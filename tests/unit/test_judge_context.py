"""Fitting the LLM judge's prompt into a small context window (routeq.judges.context)."""

from __future__ import annotations

import random

import pytest

from routeq.judges import (
    FittedJudgePrompt,
    JudgeBudget,
    JudgeError,
    JudgePromptTooLargeError,
    fit_judge_messages,
    judge_messages,
)
from routeq.judges.context import MIN_QUESTION_TOKENS, shorten
from routeq.tokens import count_message_tokens, count_tokens

RUBRIC = (
    "Score the summary from 1 (unfaithful) to 10 (faithful, concise). Reply with JSON only: "
    '{"score": <integer 1-10>, "reason": "<one sentence>"}'
)
SMALL = JudgeBudget(context_window=2_048, max_output_tokens=256, margin=0.2)


def document(sentences: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["revenue", "grew", "in", "region", "while", "costs", "fell", "sharply", "and", "the"]
    return " ".join(
        f"Sentence {i} says {' '.join(rng.choice(words) for _ in range(8))} by {i % 97}%."
        for i in range(sentences)
    )


SOURCE = "Summarize the text in at most 80 words.\n\nText to summarize:\n" + document(3_000)
ANSWER = "Revenue grew in most regions while costs fell; region 7 led the growth. " * 3


def fitted(
    question: str = SOURCE, answer: str = ANSWER, budget: JudgeBudget | None = SMALL
) -> FittedJudgePrompt:
    return fit_judge_messages(RUBRIC, question, answer, budget, question_label="source")


def content(prompt: FittedJudgePrompt) -> str:
    return prompt.messages[1]["content"]


# -- nothing to cut ----------------------------------------------------------------------------


def test_without_a_window_the_prompt_is_built_whole() -> None:
    prompt = fitted(budget=None)
    assert prompt.messages == judge_messages(RUBRIC, SOURCE, ANSWER)
    assert not prompt.shortened and prompt.notes == ()
    assert prompt.prompt_tokens == count_message_tokens(prompt.messages)


def test_a_prompt_that_fits_is_left_alone() -> None:
    question = "What is the capital of France?"
    prompt = fit_judge_messages(RUBRIC, question, "Paris.", SMALL)
    assert prompt.messages == judge_messages(RUBRIC, question, "Paris.")
    assert not prompt.shortened and not prompt.answer_shortened


# -- the incident: a whole source in the judge's prompt -----------------------------------------


def test_a_long_source_is_cut_to_fit_with_the_answer_whole() -> None:
    assert not SMALL.fits(count_message_tokens(judge_messages(RUBRIC, SOURCE, ANSWER)))

    prompt = fitted()

    assert SMALL.fits(prompt.prompt_tokens)
    assert prompt.prompt_tokens == count_message_tokens(prompt.messages)
    text = content(prompt)
    assert ANSWER in text  # never cut while it fits
    assert not prompt.answer_shortened
    assert text.startswith("Question:\nSummarize the text in at most 80 words.")  # the head
    assert "Sentence 2999 says" in text  # the tail
    assert "Sentence 1500 says" not in text  # the middle is left out...
    assert "tokens of the source left out to fit the context window" in text  # ...visibly
    assert "Note: the middle of the source was left out" in text  # and the judge is told
    kept, total = prompt.question_tokens
    assert kept < total == count_tokens(SOURCE)
    assert prompt.notes == (f"judge saw {kept:,} of {total:,} source tokens (head and tail)",)


def test_the_cut_uses_most_of_the_room() -> None:
    prompt = fitted()
    assert prompt.prompt_tokens >= 0.9 * SMALL.prompt_tokens


def test_an_answer_too_long_for_the_window_is_cut_and_the_notes_say_so() -> None:
    answer = document(800, seed=1)

    prompt = fitted(answer=answer)

    assert SMALL.fits(prompt.prompt_tokens)
    assert prompt.answer_shortened
    kept, total = prompt.answer_tokens
    assert 0 < kept < total
    assert "tokens of the answer left out to fit the context window" in content(prompt)
    assert "the middle of the source and the middle of the answer were left out" in content(prompt)
    assert prompt.notes[-1] == (
        f"judge saw only {kept:,} of {total:,} answer tokens (head and tail): "
        "the answer alone did not fit the judge's context window"
    )
    assert prompt.question_tokens[0] >= MIN_QUESTION_TOKENS  # the judge still sees the ask


def test_a_short_question_is_kept_whole_when_the_answer_is_cut() -> None:
    question = "Summarize the text."
    prompt = fit_judge_messages(RUBRIC, question, document(800, seed=2), SMALL)
    assert prompt.question_tokens == (count_tokens(question),) * 2
    assert prompt.answer_shortened and len(prompt.notes) == 1


def test_a_window_that_cannot_hold_the_rubric_is_a_judge_error() -> None:
    tiny = JudgeBudget(context_window=120, max_output_tokens=64)

    with pytest.raises(JudgePromptTooLargeError, match="cannot hold the rubric") as caught:
        fitted(budget=tiny)

    assert isinstance(caught.value, JudgeError)


def test_no_room_left_for_the_reply_is_a_judge_error() -> None:
    with pytest.raises(JudgePromptTooLargeError):
        fitted(budget=JudgeBudget(context_window=1_000, max_output_tokens=1_000))


@pytest.mark.parametrize("seed", range(12))
def test_whatever_the_sizes_the_prompt_fits_or_the_judge_error_says_why(seed: int) -> None:
    rng = random.Random(seed)
    budget = JudgeBudget(
        context_window=rng.choice([512, 1_024, 2_048, 4_096, 8_192]),
        max_output_tokens=rng.choice([64, 256, 512]),
        margin=rng.choice([0.0, 0.1, 0.2, 0.35]),
    )
    question = document(rng.randint(1, 1_500), seed=seed)
    answer = document(rng.randint(1, 600), seed=seed + 100)
    try:
        prompt = fit_judge_messages(RUBRIC, question, answer, budget)
    except JudgePromptTooLargeError:
        assert budget.prompt_tokens < count_message_tokens(judge_messages(RUBRIC, "", "")) + 200
        return
    assert budget.fits(prompt.prompt_tokens)
    answer_total = count_tokens(answer)
    room_for_answer = budget.prompt_tokens - count_message_tokens(judge_messages(RUBRIC, "", ""))
    if answer_total + MIN_QUESTION_TOKENS + 100 < room_for_answer:
        assert not prompt.answer_shortened and answer in content(prompt)


def test_a_huge_source_is_cut_quickly() -> None:
    # A million characters: counting is the cost, and it is done a bounded number of times.
    prompt = fitted(question=document(20_000), budget=JudgeBudget(8_192, 512))
    assert JudgeBudget(8_192, 512).fits(prompt.prompt_tokens)


# -- shorten ----------------------------------------------------------------------------------


def test_shorten_keeps_head_and_tail_within_the_budget() -> None:
    text = document(500)
    short, kept = shorten(text, 200, "source")
    assert kept <= 200 and kept >= 180
    assert short.startswith("Sentence 0 says") and short.endswith(text[-20:])
    assert "[... " in short


def test_shorten_leaves_a_fitting_text_alone() -> None:
    assert shorten("a short text", 50, "source") == ("a short text", count_tokens("a short text"))


@pytest.mark.parametrize("text", ["x" * 20_000, "日本語の文章です。" * 2_000, "Zm9v" * 5_000])
def test_shorten_cuts_text_without_whitespace(text: str) -> None:
    short, kept = shorten(text, 300, "answer")
    assert 0 < kept <= 300
    assert short.startswith(text[:10]) and short.endswith(text[-10:])
