"""Unit tests of the retry loop (routeq.providers.retry): attempts, backoff, Retry-After."""

from __future__ import annotations

import random
import types
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from routeq.config import ModelEndpoint, RetryConfig
from routeq.errors import (
    MalformedResponseError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from routeq.providers import (
    Attempt,
    ChatRequest,
    ChatResponse,
    OpenAIProvider,
    Provider,
    backoff_delay,
    complete_with_retries,
)
from routeq.providers import retry as retry_module

ENDPOINT = ModelEndpoint(
    provider="openai",
    base_url="https://llm.example.test/v1",
    model="test-model",
    input_price_per_mtok=Decimal("1"),
    output_price_per_mtok=Decimal("2"),
)
REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=16)
RESPONSE = ChatResponse(
    content="hello",
    finish_reason="stop",
    input_tokens=8,
    output_tokens=1,
    tokens_estimated=False,
    model="test-model",
)
RETRY = RetryConfig(max_retries=3, backoff_base_s=0.5, backoff_max_s=20.0, retry_after_max_s=60.0)

Outcome = ChatResponse | ProviderError


class ScriptedProvider(Provider):
    """Answers each ``complete`` with the next scripted outcome: a response, or an error raised."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.endpoint = ENDPOINT
        self.outcomes = list(outcomes)
        self.calls: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls.append(request)
        assert self.outcomes, "provider called more often than scripted"
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome


class Run:
    """Records what ``complete_with_retries`` reports and sleeps."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.slept: list[float] = []

    def __call__(
        self, provider: Provider, retry: RetryConfig = RETRY, seed: int = 1234
    ) -> ChatResponse:
        return complete_with_retries(
            provider,
            REQUEST,
            retry,
            self.attempts.append,
            sleep=self.slept.append,
            rng=random.Random(seed),
        )


@pytest.fixture
def run() -> Run:
    return Run()


def transient(n: int = 0, retry_after: float | None = None) -> TransientProviderError:
    return TransientProviderError(f"HTTP 503 #{n}", status_code=503, retry_after=retry_after)


def ceiling(try_number: int, retry: RetryConfig = RETRY) -> float:
    return min(retry.backoff_max_s, retry.backoff_base_s * 2 ** (try_number - 1))


def assert_backoff_bounds(slept: list[float], retry: RetryConfig = RETRY) -> None:
    for try_number, seconds in enumerate(slept, start=1):
        top = ceiling(try_number, retry)
        assert top / 2 <= seconds <= top, (try_number, seconds)


# ---------------------------------------------------------------- attempts and outcome


def test_first_try_success_reports_one_attempt_and_never_sleeps(run: Run) -> None:
    provider = ScriptedProvider(RESPONSE)

    assert run(provider) is RESPONSE

    assert len(run.attempts) == 1
    attempt = run.attempts[0]
    assert (attempt.try_number, attempt.response, attempt.error) == (1, RESPONSE, None)
    assert isinstance(attempt.latency_ms, int)
    assert attempt.latency_ms >= 0
    assert run.slept == []
    assert provider.calls == [REQUEST]


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_fails_then_succeeds_reports_every_attempt_in_order(run: Run, failures: int) -> None:
    errors = [transient(n) for n in range(failures)]
    provider = ScriptedProvider(*errors, RESPONSE)

    assert run(provider) is RESPONSE

    assert [a.try_number for a in run.attempts] == list(range(1, failures + 2))
    assert [a.error for a in run.attempts[:-1]] == errors
    assert all(a.error is e for a, e in zip(run.attempts, errors, strict=False))
    assert all(a.response is None for a in run.attempts[:-1])
    assert run.attempts[-1].response is RESPONSE
    assert run.attempts[-1].error is None
    assert len(run.slept) == failures
    assert len(provider.calls) == failures + 1
    assert provider.outcomes == []


@pytest.mark.parametrize("max_retries", [0, 1, 3, 5])
def test_gives_up_after_max_retries_plus_one_and_reraises_last_error(
    run: Run, max_retries: int
) -> None:
    retry = RETRY.model_copy(update={"max_retries": max_retries})
    errors = [transient(n) for n in range(max_retries + 1)]
    provider = ScriptedProvider(*errors, RESPONSE)

    with pytest.raises(TransientProviderError) as caught:
        run(provider, retry)

    assert caught.value is errors[-1]
    assert [a.try_number for a in run.attempts] == list(range(1, max_retries + 2))
    assert [a.error for a in run.attempts] == errors
    assert all(a.response is None for a in run.attempts)
    # No sleep after the final failure: nobody is going to retry.
    assert len(run.slept) == max_retries
    assert provider.outcomes == [RESPONSE]


@pytest.mark.parametrize(
    "error",
    [
        PermanentProviderError("HTTP 400: bad request", status_code=400),
        PermanentProviderError("HTTP 401: bad key", status_code=401, retry_after=1.0),
        PermanentProviderError("environment variable X is not set"),
    ],
    ids=["400", "401-with-retry-after", "no-key"],
)
def test_permanent_error_is_not_retried(run: Run, error: ProviderError) -> None:
    provider = ScriptedProvider(error, RESPONSE)

    with pytest.raises(PermanentProviderError) as caught:
        run(provider)

    assert caught.value is error
    assert len(run.attempts) == 1
    assert run.attempts[0].try_number == 1
    assert run.attempts[0].error is error
    assert run.slept == []
    assert len(provider.calls) == 1


def test_permanent_error_after_transient_ones_stops_the_loop(run: Run) -> None:
    first, permanent = transient(0), PermanentProviderError("HTTP 404", status_code=404)
    provider = ScriptedProvider(first, permanent, RESPONSE)

    with pytest.raises(PermanentProviderError) as caught:
        run(provider)

    assert caught.value is permanent
    assert [a.error for a in run.attempts] == [first, permanent]
    assert len(run.slept) == 1
    assert provider.outcomes == [RESPONSE]


def test_malformed_responses_are_retried(run: Run) -> None:
    garbled = [MalformedResponseError(f"not JSON #{n}", status_code=200) for n in range(2)]
    provider = ScriptedProvider(*garbled, RESPONSE)

    assert run(provider) is RESPONSE

    assert [a.error for a in run.attempts] == [*garbled, None]
    assert_backoff_bounds(run.slept)


def test_always_malformed_hits_the_cap(run: Run) -> None:
    garbled = [MalformedResponseError(f"garbage #{n}") for n in range(RETRY.max_retries + 1)]

    with pytest.raises(MalformedResponseError) as caught:
        run(ScriptedProvider(*garbled))

    assert caught.value is garbled[-1]
    assert len(run.attempts) == RETRY.max_retries + 1


def test_latency_is_measured_per_attempt(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(retry_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    class Slow(ScriptedProvider):
        def complete(self, request: ChatRequest) -> ChatResponse:
            clock[0] += 0.25 * len(self.calls) + 0.125
            return super().complete(request)

    run(Slow(transient(), transient(), RESPONSE))

    assert [a.latency_ms for a in run.attempts] == [125, 375, 625]


# ---------------------------------------------------------------- Retry-After and backoff


def test_retry_after_is_honoured_and_capped(run: Run) -> None:
    retry = RETRY.model_copy(update={"max_retries": 4, "retry_after_max_s": 60.0})
    hints = [2.0, 0.0, 59.5, 500.0]
    provider = ScriptedProvider(*(transient(n, h) for n, h in enumerate(hints)), RESPONSE)

    assert run(provider, retry) is RESPONSE

    assert run.slept == [2.0, 0.0, 59.5, 60.0]


def test_retry_after_wins_over_backoff_then_backoff_resumes(run: Run) -> None:
    provider = ScriptedProvider(transient(0, 7.0), transient(1), RESPONSE)

    run(provider)

    assert run.slept[0] == 7.0
    top = ceiling(2)
    assert top / 2 <= run.slept[1] <= top


def test_backoff_without_retry_after_stays_in_jitter_window(run: Run) -> None:
    retry = RETRY.model_copy(update={"max_retries": 8, "backoff_base_s": 1.0, "backoff_max_s": 10})
    provider = ScriptedProvider(*(transient(n) for n in range(8)), RESPONSE)

    run(provider, retry)

    assert len(run.slept) == 8
    assert_backoff_bounds(run.slept, retry)
    # The ceiling stops doubling at backoff_max_s.
    assert all(s <= 10 for s in run.slept)
    assert max(run.slept[4:]) >= 5


def test_same_seed_same_delays() -> None:
    first, second, other = Run(), Run(), Run()
    script = [transient(n) for n in range(3)]

    first(ScriptedProvider(*script, RESPONSE), seed=7)
    second(ScriptedProvider(*script, RESPONSE), seed=7)
    other(ScriptedProvider(*script, RESPONSE), seed=8)

    assert first.slept == second.slept
    assert first.slept != other.slept


@pytest.mark.parametrize("try_number", range(1, 11))
@pytest.mark.parametrize(
    ("base", "cap"), [(0.5, 20.0), (1.0, 4.0), (0.1, 100.0)], ids=["default", "low-cap", "small"]
)
def test_backoff_delay_within_half_ceiling_and_ceiling(
    try_number: int, base: float, cap: float
) -> None:
    retry = RetryConfig(backoff_base_s=base, backoff_max_s=cap)
    top = min(cap, base * 2 ** (try_number - 1))
    rng = random.Random(try_number)

    delays = [backoff_delay(try_number, retry, None, rng) for _ in range(200)]

    assert all(top / 2 <= d <= top for d in delays)
    # Jitter is real: the delays spread over the window rather than sitting at one value.
    assert max(delays) - min(delays) > top / 4


def test_backoff_delay_is_exponential_until_the_cap() -> None:
    retry = RetryConfig(backoff_base_s=0.5, backoff_max_s=20.0)

    ceilings = [ceiling(n, retry) for n in range(1, 9)]

    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    for n, top in enumerate(ceilings, start=1):
        assert backoff_delay(n, retry, None, random.Random(0)) <= top


def test_backoff_delay_zero_base_is_zero() -> None:
    retry = RetryConfig(backoff_base_s=0.0)

    assert backoff_delay(3, retry, None, random.Random(0)) == 0.0


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 0.0), (2.0, 2.0), (60.0, 60.0), (61.0, 60.0), (1e9, 60.0)]
)
def test_backoff_delay_retry_after_capped_and_rng_untouched(
    retry_after: float, expected: float
) -> None:
    rng = random.Random(5)
    state = rng.getstate()

    assert backoff_delay(4, RETRY, retry_after, rng) == expected
    assert rng.getstate() == state


# ---------------------------------------------------------------- through a real adapter


@pytest.fixture
def scripted_http() -> Iterator[tuple[list[httpx.Response], list[httpx.Request], httpx.Client]]:
    answers: list[httpx.Response] = []
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        yield answers, seen, client


def test_openai_adapter_retries_429_and_503_then_succeeds(run: Run, scripted_http: Any) -> None:
    answers, seen, client = scripted_http
    ok: dict[str, Any] = {
        "model": "test-model",
        "choices": [{"message": {"role": "assistant", "content": "hi!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2},
    }
    answers.extend(
        [
            httpx.Response(429, json={"error": {"message": "slow"}}, headers={"Retry-After": "1"}),
            httpx.Response(503, text="busy"),
            httpx.Response(200, text="<html>proxy</html>"),
            httpx.Response(200, json=ok),
        ]
    )

    response = run(OpenAIProvider(ENDPOINT, client))

    assert response.content == "hi!"
    assert (response.input_tokens, response.output_tokens) == (9, 2)
    assert len(seen) == 4
    kinds = [type(a.error) for a in run.attempts]
    assert kinds == [
        TransientProviderError,
        TransientProviderError,
        MalformedResponseError,
        type(None),
    ]
    assert [a.error.status_code for a in run.attempts[:-1] if a.error] == [429, 503, 200]
    assert run.slept[0] == 1.0
    for try_number in (2, 3):
        top = ceiling(try_number)
        assert top / 2 <= run.slept[try_number - 1] <= top


def test_openai_adapter_permanent_error_sends_one_request(run: Run, scripted_http: Any) -> None:
    answers, seen, client = scripted_http
    answers.append(httpx.Response(401, json={"error": {"message": "Invalid API key"}}))

    with pytest.raises(PermanentProviderError, match="Invalid API key"):
        run(OpenAIProvider(ENDPOINT, client))

    assert len(seen) == 1
    assert len(run.attempts) == 1
    assert run.slept == []
