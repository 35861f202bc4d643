"""The provider interface: one chat request, one attempt, a typed response or a typed error.

Adapters translate a protocol (OpenAI-compatible, Anthropic) into ``ChatResponse`` and map every
failure onto ``TransientProviderError`` (retry) or ``PermanentProviderError`` (do not), so the
retry loop in ``providers.retry`` is protocol-agnostic.

Every message a provider error carries is scrubbed (``routeq.secrets.scrub``) of the endpoint's
key, the other registered secrets and credential-shaped text before the error is raised: those
messages go to the ledger and the terminal, and provider bodies and httpx errors can quote keys.
"""

from __future__ import annotations

import datetime
import email.utils
import time
from collections.abc import Iterable
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
from routeq.providers.context_limit import context_length_error
from routeq.secrets import api_key_problem, register_secret_env, scrub


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float | None = None  # the query's own, when it set one; else the provider's
    # The ledger's id of this attempt, sent as the X-Routeq-Request-Id header so a provider's
    # (or the simulated server's) request log can be matched against the ledger. An id only.
    request_id: str | None = None


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
        # Any text scrubbed in this process (ledger writes, logs) loses this key from now on.
        register_secret_env([endpoint.api_key_env])

    def complete(self, request: ChatRequest) -> ChatResponse:
        """One attempt. Raises ProviderError subclasses; never retries by itself."""
        raise NotImplementedError

    # -- helpers shared by adapters -------------------------------------------------------------

    def _api_key(self) -> str | None:
        """The key to send, read now (keys rotate); refused, naming the variable and never the
        value, when it is unset or could not be sent as a header value (the environment may
        have changed since the configuration was validated)."""
        key_env = self.endpoint.api_key_env
        if key_env is None:
            return None
        key = self.endpoint.api_key()
        if not key:
            raise PermanentProviderError(
                f"environment variable {key_env} is not set: export the API key for model "
                f"{self.endpoint.model!r} in it before starting workers"
            )
        problem = api_key_problem(key_env, key)
        if problem is not None:
            raise PermanentProviderError(
                f"the API key for model {self.endpoint.model!r} cannot be sent: {problem}"
            )
        return key

    def _scrub(self, text: str) -> str:
        """``text`` without this endpoint's key (even if its variable was never registered),
        the registered secrets, or anything shaped like a credential."""
        return scrub(text, [self.endpoint.api_key()])

    def _post(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        """POST JSON and return the decoded body, mapping transport and HTTP errors."""
        response = self._send(f"{self.endpoint.base_url}{path}", headers, body)
        if response.status_code >= 400:
            raise http_error(response, [self.endpoint.api_key()])
        try:
            return response.json()
        except ValueError:
            raise MalformedResponseError(
                f"HTTP {response.status_code} with a body that is not JSON "
                f"({len(response.content)} bytes)",
                status_code=response.status_code,
            ) from None

    def _send(self, url: str, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        """One POST. A request that cannot even be sent (an illegal header value, a bad URL) is
        permanent: every retry would fail the same way, and only burn the retry budget."""
        try:
            return self._http.post(url, json=body, headers=headers, timeout=self.endpoint.timeout_s)
        except httpx.TimeoutException as exc:
            raise TransientProviderError(
                f"timed out after {self.endpoint.timeout_s:g}s: {type(exc).__name__}"
            ) from exc
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            unsendable: Exception = exc
            detail = self._scrub(str(exc))
        except UnicodeEncodeError as exc:  # a non-ASCII header value; its text names the char
            unsendable, detail = exc, "a header value is not ASCII"
        except httpx.TransportError as exc:
            raise TransientProviderError(
                f"connection failed: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc
        except httpx.DecodingError as exc:
            raise MalformedResponseError(
                f"undecodable response body: {self._scrub(str(exc))}"
            ) from exc
        except httpx.HTTPError as exc:  # e.g. TooManyRedirects: not the request's fault
            raise TransientProviderError(
                f"request failed: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc
        # Raised outside the handler, so the error keeps no reference (__cause__ or __context__)
        # to httpx's exception, whose text may hold the whole key and would reappear in any
        # traceback that is logged.
        raise PermanentProviderError(
            f"the request cannot be sent ({type(unsendable).__name__}: {detail}); check "
            f"base_url and that {self.endpoint.api_key_env or 'the API key variable'} holds "
            "only the key, without a newline or spaces"
        )


REQUEST_ID_HEADER = "X-Routeq-Request-Id"


def http_error(response: httpx.Response, secrets: Iterable[str | None] = ()) -> ProviderError:
    """Classify an HTTP error response: a prompt too long for the model's context window is a
    ``ContextLengthExceededError`` (permanent, whatever the status: see
    ``providers.context_limit``), 429 and other 5xx are transient, other 4xx permanent. The
    provider's message is scrubbed of ``secrets`` (and the registered ones) first: providers
    echo rejected keys."""
    status = response.status_code
    detail = _error_message(response, secrets)
    overflow = context_length_error(status, _body(response), detail)
    if overflow is not None:
        return overflow
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


def _body(response: httpx.Response) -> Any:
    """The decoded JSON body, or the raw text when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text


def _error_message(response: httpx.Response, secrets: Iterable[str | None] = ()) -> str:
    """The provider's own error message when it sent one, else a short excerpt of the body.
    Scrubbed before it is cut, so a key straddling the cut cannot leave a prefix behind."""
    secrets = list(secrets)
    try:
        body = response.json()
    except ValueError:
        return scrub(response.text, secrets)[:200].strip() or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return scrub(str(error["message"]), secrets)[:500]
        if isinstance(error, str):
            return scrub(error, secrets)[:500]
        message = body.get("message")  # vLLM's older error bodies: {"object": "error", ...}
        if isinstance(message, str) and message:
            return scrub(message, secrets)[:500]
    return scrub(str(body), secrets)[:200]


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
