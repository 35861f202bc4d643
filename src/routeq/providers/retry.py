"""Retries with exponential backoff and jitter, honouring ``Retry-After``, each attempt reported.

Only ``TransientProviderError`` (and malformed bodies) are retried. The caller's ``on_attempt``
hook records every attempt in the ledger, failed ones included, so retries never hide spend.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from routeq.config import RetryConfig
from routeq.errors import ProviderError
from routeq.providers.base import ChatRequest, ChatResponse, Provider


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt as the ledger records it."""

    try_number: int
    latency_ms: int
    response: ChatResponse | None = None
    error: ProviderError | None = None
    pause_s: float | None = None  # the wait before the next attempt; None when none follows


def backoff_delay(
    try_number: int, retry: RetryConfig, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before attempt ``try_number + 1``.

    The provider's Retry-After wins (capped); otherwise exponential backoff with equal jitter, so
    concurrent workers that failed together do not retry together.
    """
    if retry_after is not None:
        return min(retry_after, retry.retry_after_max_s)
    ceiling = min(retry.backoff_max_s, retry.backoff_base_s * (2 ** (try_number - 1)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def complete_with_retries(
    provider: Provider,
    request: ChatRequest,
    retry: RetryConfig,
    on_attempt: Callable[[Attempt], None],
    *,
    before_attempt: Callable[[int, float], ChatRequest] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> ChatResponse:
    """Call the provider up to ``1 + retry.max_retries`` times; raise the last error.

    ``before_attempt(try_number, pause_s)`` runs before each attempt and returns the request to
    send (the ledger records the attempt before it leaves and tags it with its id);
    ``on_attempt`` runs after each one, told how long the loop will pause before the next."""
    rng = rng or random.Random()
    try_number = 0
    pause = 0.0
    while True:
        try_number += 1
        sent = before_attempt(try_number, pause) if before_attempt is not None else request
        started = time.perf_counter()
        try:
            response = provider.complete(sent)
        except ProviderError as error:
            last = not error.retryable or try_number > retry.max_retries
            pause = 0.0 if last else backoff_delay(try_number, retry, error.retry_after, rng)
            on_attempt(
                Attempt(
                    try_number,
                    _elapsed_ms(started),
                    error=error,
                    pause_s=None if last else pause,
                )
            )
            if last:
                raise
            sleep(pause)
            continue
        on_attempt(Attempt(try_number, _elapsed_ms(started), response=response))
        return response


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
