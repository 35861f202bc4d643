"""routeq's exception hierarchy.

Every error a user can cause says what was wrong and how to fix it. Provider errors are split by
retryability (as httpx splits transport errors) so the retry loop needs one ``isinstance`` check.
"""

from __future__ import annotations

from decimal import Decimal


class RouteqError(Exception):
    """Base class of every error routeq raises on purpose."""


class ConfigError(RouteqError):
    """The configuration file or environment is malformed. Raised at start, never mid-flight."""


class UsageError(RouteqError):
    """The command was asked for something it cannot do as asked (a bad option, a path that
    does not exist): nothing was started. The CLI exits 2."""


class InvalidQueryError(RouteqError):
    """A submitted query cannot be accepted (empty, too long for every tier, bad metadata)."""


class UnknownQueryError(RouteqError):
    """No query with this id exists in the ledger."""


class UnreadableQueryError(RouteqError):
    """A stored query's input cannot be decoded (a row an older client wrote): its step fails,
    and the delivery cap ends the hop with the reason."""


class DeliverySupersededError(RouteqError):
    """A newer delivery owns the hop (this one's lease ran out): stop before calling a model
    again; the newer delivery does the work and records it."""


class ProviderError(RouteqError):
    """A model provider call failed.

    ``retryable`` tells the retry loop whether another attempt can help; ``status_code`` is the
    HTTP status when there was a response; ``retry_after`` is the provider's own hint in seconds.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientProviderError(ProviderError):
    """Connect errors, timeouts, 429 and 5xx: worth another attempt after a backoff."""

    retryable = True


class PermanentProviderError(ProviderError):
    """4xx other than 429, or a response we cannot use: retrying the same request will not help."""

    retryable = False


class ContextLengthExceededError(PermanentProviderError):
    """The provider refused the request because the prompt (plus the requested completion) does
    not fit the model's context window.

    Permanent: the same request fails the same way on every attempt, so it is never retried. It
    is a type of its own because, unlike other permanent errors, the caller can do something
    about it: cut the prompt to fit, or move to a tier with a larger window. ``context_window``
    and ``prompt_tokens`` are the numbers the provider's message stated, when it stated them
    (None otherwise); they count with the provider's tokenizer, not routeq's.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        context_window: int | None = None,
        prompt_tokens: int | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.context_window = context_window
        self.prompt_tokens = prompt_tokens


class EndpointUnavailableError(ProviderError):
    """The endpoint was not tried: its breaker is open, its rate limit is spent, or a
    ``Retry-After`` is running (``worker.guard``). Nothing was sent, so nothing was paid; the
    call tries its tier's next endpoint, or the hop waits."""

    retryable = False

    def __init__(self, message: str, *, why: str, wait_s: float) -> None:
        super().__init__(message, retry_after=wait_s)
        self.why = why


class BudgetExceededError(ProviderError):
    """The call was not sent: its worst-case cost would take a budget (``[[spend.budgets]]``)
    or the query's ``max_cost_per_query`` past its limit. Nothing was paid; the message says
    which budget, whose, and what is left."""

    retryable = False

    def __init__(self, message: str, *, budget: str, remaining: Decimal) -> None:
        super().__init__(message)
        self.budget, self.remaining = budget, remaining


class MalformedResponseError(ProviderError):
    """The provider answered 2xx with a body that is not the protocol's JSON.

    Counted as retryable: a garbled body is usually a proxy or a provider hiccup, and the next
    attempt normally parses. The attempt cap stops a provider that always answers garbage.
    """

    retryable = True


__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "ContextLengthExceededError",
    "DeliverySupersededError",
    "EndpointUnavailableError",
    "InvalidQueryError",
    "MalformedResponseError",
    "PermanentProviderError",
    "ProviderError",
    "RouteqError",
    "TransientProviderError",
    "UnknownQueryError",
    "UnreadableQueryError",
]
