"""A simulated judge with a small context window, over real HTTP on loopback: the incident (a whole
source in the judge's prompt answered with HTTP 400), recognised as ContextLengthExceededError,
and the fitted prompt that the same judge accepts. No Redis, no Postgres."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from routeq.config import ModelEndpoint, RetryConfig
from routeq.errors import ContextLengthExceededError
from routeq.judges import JudgeBudget, fit_judge_messages, judge_messages, parse_judge_reply
from routeq.providers import Attempt, ChatRequest, OpenAIProvider, complete_with_retries
from routeq.sim import SimConfig, SimModel, SimServer

WINDOW = 2_048
REPLY_TOKENS = 256
RUBRIC = 'Score the summary from 1 to 10. Reply with JSON only: {"score": <1-10>, "reason": "..."}'


def source_text() -> str:
    rng = random.Random(7)
    words = ["revenue", "grew", "in", "region", "while", "costs", "fell", "sharply", "and", "the"]
    sentences = (
        f"Sentence {i} says {' '.join(rng.choice(words) for _ in range(8))} by {i % 97}%."
        for i in range(2_000)
    )
    return "Summarize the text in at most 80 words.\n\nText to summarize:\n" + " ".join(sentences)


QUESTION = source_text()
ANSWER = "[sim:sim-small q=0.85] Revenue grew in most regions while costs fell sharply."


@pytest.fixture(scope="module")
def judge() -> Iterator[OpenAIProvider]:
    model = SimModel(name="sim-judge", quality=1.0, latency_ms=0, judge=True, context_window=WINDOW)
    with SimServer(SimConfig(seed=0, models={model.name: model})) as sim, httpx.Client() as http:
        endpoint = ModelEndpoint(
            provider="openai",
            base_url=sim.url,
            model="sim-judge",
            input_price_per_mtok=Decimal("0.15"),
            output_price_per_mtok=Decimal("0.60"),
            timeout_s=5.0,
            max_output_tokens=REPLY_TOKENS,
        )
        yield OpenAIProvider(endpoint, http)


def ask(judge: OpenAIProvider, messages: list[dict[str, str]]) -> str:
    attempts: list[Attempt] = []
    request = ChatRequest(messages=messages, max_tokens=REPLY_TOKENS)
    response = complete_with_retries(
        judge, request, RetryConfig(max_retries=3), attempts.append, sleep=lambda s: None
    )
    return response.content


def test_the_whole_source_is_refused_once_and_not_retried(judge: OpenAIProvider) -> None:
    attempts: list[Attempt] = []
    request = ChatRequest(messages=judge_messages(RUBRIC, QUESTION, ANSWER), max_tokens=256)

    with pytest.raises(ContextLengthExceededError) as caught:
        complete_with_retries(
            judge, request, RetryConfig(max_retries=3), attempts.append, sleep=lambda s: None
        )

    assert len(attempts) == 1
    assert caught.value.status_code == 400
    assert caught.value.context_window == WINDOW
    assert caught.value.prompt_tokens is not None and caught.value.prompt_tokens > WINDOW


def test_the_fitted_prompt_is_accepted_and_scored(judge: OpenAIProvider) -> None:
    prompt = fit_judge_messages(
        RUBRIC, QUESTION, ANSWER, JudgeBudget(WINDOW, REPLY_TOKENS), question_label="source"
    )
    assert prompt.shortened and not prompt.answer_shortened

    score = parse_judge_reply(ask(judge, prompt.messages))

    assert score.score == 9  # the simulated judge grades the answer's q=0.85 label: it saw it


def test_without_a_margin_the_fitted_prompt_can_still_overflow(judge: OpenAIProvider) -> None:
    # The simulated server counts 4 characters per token, more than routeq's cl100k count of
    # this text, as a real model's tokenizer may: fitted by routeq's count alone, it is refused.
    prompt = fit_judge_messages(RUBRIC, QUESTION, ANSWER, JudgeBudget(WINDOW, REPLY_TOKENS, 0.0))

    with pytest.raises(ContextLengthExceededError):
        ask(judge, prompt.messages)
