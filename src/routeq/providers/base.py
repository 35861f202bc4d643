"""The provider interface: one chat request, one attempt, a typed response or a typed error.

Adapters translate a protocol (OpenAI-compatible, Anthropic) into ``ChatResponse`` and map every
failure onto ``TransientProviderError`` (retry) or ``PermanentProviderError`` (do not), so the
retry loop in ``providers.retry`` is protocol-agnostic.
"""

from __future__ import annotations

import datetime
import email.utils
import time
from dataclasses import dataclass
from typing import Any

import httpx

from routeq.config import ModelEndpoint
from routeq.errors import (
    MalformedResponseError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    max_tokens: int


@dataclass(frozen=True)
class ChatResponse:
    content: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    model: str


class Provider:
    """Base adapter: owns the endpoint config and a shared ``httpx.Client``."""

    def __init__(self, endpoint: ModelEndpoint, http: httpx.Client) -> None:
        self.endpoint = endpoint
        self._http = http

    def complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt. Raises ProviderError subclasses; never retries by itself."""
        raise NotImplementedError

    # -- helpers shared by adapters -------------------------------------------------------------

    def _api_key(self) -> str | None:
        key_env = self.endpoint.api_key_env
        if key_env is None:
            return None
        key = self.endpoint.api_key()
        if not key:
            raise PermanentProviderError(
                f"environment variable {key_env} is not set: export the API key for model "
                f"{self.endpoint.model!r} in it before starting workers"
            )
        return key

    def _post(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        """POST JSON and return the decoded body, mapping transport and HTTP errors."""
        url = f"{self.endpoint.base_url}{path}"
        try:
            response = self._http.post(
                url, json=body, headers=headers, timeout=self.endpoint.timeout_s
            )
        except httpx.TimeoutException as exc:
            raise TransientProviderError(
                f"timed out after {self.endpoint.timeout_s:g}s: {type(exc).__name__}"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientProviderError(f"connection failed: {type(exc).__name__}: {exc}") from exc
        except httpx.DecodingError as exc:
            raise MalformedResponseError(f"undecodable response body: {exc}") from exc
        except httpx.HTTPError as exc:  # e.g. TooManyRedirects: not the request's fault
            raise TransientProviderError(f"request failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise http_error(response)
        try:
            return response.json()
        except ValueError:
            raise MalformedResponseError(
                f"HTTP {response.status_code} with a body that is not JSON "
                f"({len(response.content)} bytes)",
                status_code=response.status_code,
            ) from None


def http_error(response: httpx.Response) -> ProviderError:
    """Classify an HTTP error response: 429 and 5xx are transient, other 4xx permanent."""
    status = response.status_code
    detail = _error_message(response)
    if status == 429:
        return TransientProviderError(
            f"HTTP 429 rate limited: {detail}",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500:
        return TransientProviderError(
            f"HTTP {status} server error: {detail}",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    return PermanentProviderError(f"HTTP {status}: {detail}", status_code=status)


def _error_message(response: httpx.Response) -> str:
    """The provider's own error message when it sent one, else a short excerpt of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return str(body)[:200]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # asctime dates carry no zone; RFC 9110 says they are UTC
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def require(condition: bool, message: str) -> None:
    """Raise MalformedResponseError unless ``condition``: a 2xx body that breaks the protocol."""
    if not condition:
        raise MalformedResponseError(f"response does not follow the protocol: {message}")
