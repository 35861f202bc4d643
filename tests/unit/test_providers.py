"""Unit tests of the provider adapters (routeq.providers) over ``httpx.MockTransport``.

No network: every HTTP exchange is answered by a scripted handler that also records the requests
the adapter sent.
"""

from __future__ import annotations

import email.utils
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from routeq.config import ModelEndpoint, RetryConfig
from routeq.errors import (
    ContextLengthExceededError,
    MalformedResponseError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from routeq.providers import (
    AnthropicProvider,
    Attempt,
    ChatRequest,
    ChatResponse,
    OpenAIProvider,
    Provider,
    complete_with_retries,
    parse_retry_after,
    provider_for,
)
from routeq.providers.anthropic import ANTHROPIC_VERSION
from routeq.secrets import register_secret_env
from routeq.tokens import count_message_tokens, count_tokens

KEY_ENV = "ROUTEQ_TEST_PROVIDER_KEY"
SECRET = "sk-test-0123456789abcdef-do-not-leak"
BASE_URL = "https://llm.example.test/v1"

REQUEST = ChatRequest(
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    max_tokens=64,
)

Handler = Callable[[httpx.Request], httpx.Response]


def endpoint(provider: str = "openai", **overrides: Any) -> ModelEndpoint:
    fields: dict[str, Any] = {
        "provider": provider,
        "base_url": BASE_URL,
        "model": "test-model",
        "input_price_per_mtok": Decimal("1"),
        "output_price_per_mtok": Decimal("2"),
        "timeout_s": 7.5,
    }
    fields.update(overrides)
    return ModelEndpoint(**fields)


class Recorder:
    """A MockTransport handler: records each request, then answers with ``answer(request)``."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def last(self) -> httpx.Request:
        assert self.requests, "the adapter sent no request"
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)


def reply(status: int = 200, body: Any = None, **kwargs: Any) -> Handler:
    """A handler that always answers ``status`` with ``body`` as JSON (or raw bytes/str)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes | str):
            return httpx.Response(status, content=body, **kwargs)
        return httpx.Response(status, json=body, **kwargs)

    return answer


def raising(exc_type: type[httpx.TransportError]) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated transport failure", request=request)

    return answer


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[Provider, Recorder]]]:
    """Build an adapter of class ``cls`` whose client answers through ``handler``."""
    clients: list[httpx.Client] = []

    def build(
        cls: type[Provider], handler: Handler, **endpoint_overrides: Any
    ) -> tuple[Provider, Recorder]:
        recorder = Recorder(handler)
        client = httpx.Client(transport=httpx.MockTransport(recorder))
        clients.append(client)
        protocol = "anthropic" if cls is AnthropicProvider else "openai"
        return cls(endpoint(protocol, **endpoint_overrides), client), recorder

    yield build
    for client in clients:
        client.close()


def completion(
    content: Any = "Paris.",
    finish_reason: str | None = "stop",
    usage: Any = ...,
    model: str | None = "test-model-2024-01-01",
) -> dict[str, Any]:
    """An OpenAI chat.completion body."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }
    if model is not None:
        body["model"] = model
    if usage is ...:
        usage = {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}
    if usage is not None:
        body["usage"] = usage
    return body


def message(
    content: Any = None,
    stop_reason: str | None = "end_turn",
    usage: Any = ...,
    model: str | None = "claude-test-20240101",
) -> dict[str, Any]:
    """An Anthropic Messages API body."""
    body: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Paris."}] if content is None else content,
        "stop_reason": stop_reason,
    }
    if model is not None:
        body["model"] = model
    if usage is ...:
        usage = {"input_tokens": 17, "output_tokens": 4}
    if usage is not None:
        body["usage"] = usage
    return body


def openai_error(text: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": text, "type": kind, "param": None, "code": None}}


def anthropic_error(text: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}}


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


# ---------------------------------------------------------------- OpenAI: success


def test_openai_success_parses_response(make: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(200, completion()))

    response = provider.complete(REQUEST)

    assert response == ChatResponse(
        content="Paris.",
        finish_reason="stop",
        input_tokens=21,
        output_tokens=3,
        tokens_estimated=False,
        model="test-model-2024-01-01",
    )


def test_openai_request_url_body_and_auth_header(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    provider, recorder = make(OpenAIProvider, reply(200, completion()), api_key_env=KEY_ENV)

    provider.complete(REQUEST)

    sent = recorder.last
    assert len(recorder.requests) == 1
    assert sent.method == "POST"
    assert str(sent.url) == f"{BASE_URL}/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["content-type"] == "application/json"
    assert recorder.last_json() == {
        "model": "test-model",
        "messages": REQUEST.messages,
        "max_tokens": 64,
    }
    # The endpoint's timeout is applied to the request.
    assert sent.extensions["timeout"]["read"] == 7.5


def test_openai_base_url_trailing_slash_is_normalised(make: Any) -> None:
    provider, recorder = make(
        OpenAIProvider, reply(200, completion()), base_url="http://localhost:8000/v1/"
    )

    provider.complete(REQUEST)

    assert str(recorder.last.url) == "http://localhost:8000/v1/chat/completions"


def test_openai_no_authorization_header_without_api_key_env(make: Any) -> None:
    provider, recorder = make(OpenAIProvider, reply(200, completion()), api_key_env=None)

    provider.complete(REQUEST)

    assert "authorization" not in recorder.last.headers


def test_openai_key_is_read_at_call_time(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(KEY_ENV, "first-key")
    provider, recorder = make(OpenAIProvider, reply(200, completion()), api_key_env=KEY_ENV)
    provider.complete(REQUEST)
    monkeypatch.setenv(KEY_ENV, "rotated-key")

    provider.complete(REQUEST)

    assert [r.headers["authorization"] for r in recorder.requests] == [
        "Bearer first-key",
        "Bearer rotated-key",
    ]


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_missing_api_key_is_permanent_names_variable_and_sends_nothing(
    make: Any, monkeypatch: Any, cls: type[Provider], value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, value)
    # Other secrets in the environment must not find their way into the message either.
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    ok = completion() if cls is OpenAIProvider else message()
    provider, recorder = make(cls, reply(200, ok), api_key_env=KEY_ENV)

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    text = str(caught.value)
    assert KEY_ENV in text
    assert SECRET not in text
    assert not caught.value.retryable
    assert caught.value.status_code is None
    assert recorder.requests == []


@pytest.mark.parametrize(
    "handler",
    [
        reply(401, openai_error("Incorrect API key provided")),
        reply(500, "upstream exploded"),
        reply(200, "<html>not json</html>"),
        raising(httpx.ConnectError),
        raising(httpx.ReadTimeout),
    ],
    ids=["401", "500", "non-json", "connect", "timeout"],
)
def test_openai_errors_never_contain_the_api_key(
    make: Any, monkeypatch: Any, handler: Handler
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    provider, _ = make(OpenAIProvider, handler, api_key_env=KEY_ENV)

    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)

    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.args)


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {},
        {"prompt_tokens": 21},
        {"completion_tokens": 3},
        {"prompt_tokens": "21", "completion_tokens": "3"},
        {"prompt_tokens": 21.0, "completion_tokens": 3.0},
        "21/3",
    ],
    ids=["absent", "empty", "no-completion", "no-prompt", "strings", "floats", "not-object"],
)
def test_openai_usage_missing_is_estimated_with_tokenizer(make: Any, usage: Any) -> None:
    content = "The capital of France is Paris."
    provider, _ = make(OpenAIProvider, reply(200, completion(content=content, usage=usage)))

    response = provider.complete(REQUEST)

    assert response.tokens_estimated is True
    assert response.input_tokens == count_message_tokens(REQUEST.messages)
    assert response.output_tokens == count_tokens(content)
    assert response.input_tokens > 0
    assert response.output_tokens > 0


def test_openai_model_falls_back_to_endpoint_model(make: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(200, completion(model=None)))

    assert provider.complete(REQUEST).model == "test-model"


@pytest.mark.parametrize("finish_reason", ["length", "stop", "content_filter", None])
def test_openai_finish_reason_passed_through(make: Any, finish_reason: str | None) -> None:
    provider, _ = make(OpenAIProvider, reply(200, completion(finish_reason=finish_reason)))

    assert provider.complete(REQUEST).finish_reason == finish_reason


def test_openai_content_none_becomes_empty_string(make: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(200, completion(content=None, usage=None)))

    response = provider.complete(REQUEST)

    assert response.content == ""
    assert response.output_tokens == 0
    assert response.tokens_estimated is True


# ---------------------------------------------------------------- OpenAI: HTTP errors


def test_openai_429_with_retry_after_seconds(make: Any) -> None:
    provider, _ = make(
        OpenAIProvider,
        reply(429, openai_error("Rate limit reached"), headers={"Retry-After": "2"}),
    )

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    error = caught.value
    assert error.retryable
    assert error.status_code == 429
    assert error.retry_after == 2.0
    assert "Rate limit reached" in str(error)


def test_openai_429_with_http_date_retry_after(make: Any) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    provider, _ = make(
        OpenAIProvider,
        reply(429, openai_error("slow down"), headers={"Retry-After": http_date(when)}),
    )

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 121


@pytest.mark.parametrize("retry_after", [None, "whenever"], ids=["absent", "garbage"])
def test_openai_429_without_usable_retry_after(make: Any, retry_after: str | None) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    provider, _ = make(OpenAIProvider, reply(429, openai_error("slow down"), headers=headers))

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.status_code == 429
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_openai_5xx_is_transient(make: Any, status: int) -> None:
    provider, _ = make(OpenAIProvider, reply(status, openai_error("The server had an error")))

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retryable
    assert caught.value.status_code == status
    assert caught.value.retry_after is None
    assert "The server had an error" in str(caught.value)


def test_openai_503_honours_retry_after(make: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(503, "", headers={"Retry-After": "5"}))

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retry_after == 5.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_openai_4xx_is_permanent_with_provider_message(make: Any, status: int) -> None:
    detail = f"provider says no ({status})"
    provider, _ = make(OpenAIProvider, reply(status, openai_error(detail)))

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    error = caught.value
    assert not error.retryable
    assert error.status_code == status
    assert detail in str(error)
    assert str(status) in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "model not found"}, "model not found"),
        ("plain text failure", "plain text failure"),
        ("", "(empty body)"),
        ({"detail": "nope"}, "nope"),
    ],
    ids=["error-string", "text", "empty", "other-json"],
)
def test_http_error_detail_when_body_is_not_openai_shaped(
    make: Any, body: Any, expected: str
) -> None:
    provider, _ = make(OpenAIProvider, reply(400, body))

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert expected in str(caught.value)


def test_http_error_detail_is_truncated(make: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(400, openai_error("x" * 5000)))

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert "x" * 500 in str(caught.value)
    assert "x" * 501 not in str(caught.value)


# ---------------------------------------------------------------- OpenAI: malformed and transport


def test_openai_non_json_200_is_malformed_and_retryable(make: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(200, b"<html>gateway hiccup</html>"))

    with pytest.raises(MalformedResponseError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retryable
    assert caught.value.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        [],
        "just a string",
        {},
        {"choices": []},
        {"choices": "nope"},
        {"choices": ["nope"]},
        {"choices": [{"finish_reason": "stop"}]},
        {"choices": [{"message": "hello"}]},
        completion(content=42),
        completion(content=["Paris."]),
        completion(content={"text": "Paris."}),
    ],
    ids=[
        "list",
        "string",
        "no-choices",
        "empty-choices",
        "choices-not-list",
        "choice-not-object",
        "no-message",
        "message-not-object",
        "content-int",
        "content-list",
        "content-object",
    ],
)
def test_openai_json_breaking_protocol_is_malformed(make: Any, body: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(200, json.dumps(body)))

    with pytest.raises(MalformedResponseError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retryable


@pytest.mark.parametrize(
    "exc_type",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
        httpx.RemoteProtocolError,
    ],
)
def test_openai_transport_errors_are_transient(make: Any, exc_type: type[Exception]) -> None:
    provider, _ = make(OpenAIProvider, raising(exc_type))

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    error = caught.value
    assert error.retryable
    assert error.status_code is None
    assert isinstance(error.__cause__, exc_type)
    if issubclass(exc_type, httpx.TimeoutException):
        assert "timed out after 7.5s" in str(error)
    else:
        assert "connection failed" in str(error)


def test_garbled_content_encoding_is_a_provider_error(make: Any) -> None:
    provider, _ = make(
        OpenAIProvider,
        reply(200, b"definitely not gzip", headers={"Content-Encoding": "gzip"}),
    )

    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retryable


# ---------------------------------------------------------------- Anthropic


def test_anthropic_request_and_response(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    body = message(
        content=[
            {"type": "text", "text": "Paris"},
            {"type": "tool_use", "id": "t1", "name": "lookup", "input": {}},
            {"type": "text", "text": " is the capital."},
        ]
    )
    provider, recorder = make(AnthropicProvider, reply(200, body), api_key_env=KEY_ENV)
    request = ChatRequest(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Which France?"},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "The country."},
        ],
        max_tokens=99,
    )

    response = provider.complete(request)

    sent = recorder.last
    assert str(sent.url) == f"{BASE_URL}/messages"
    assert sent.headers["x-api-key"] == SECRET
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "authorization" not in sent.headers
    assert recorder.last_json() == {
        "model": "test-model",
        "max_tokens": 99,
        "system": "Be brief.\n\nAnswer in English.",
        "messages": [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Which France?"},
            {"role": "user", "content": "The country."},
        ],
    }
    assert response == ChatResponse(
        content="Paris is the capital.",
        finish_reason="stop",
        input_tokens=17,
        output_tokens=4,
        tokens_estimated=False,
        model="claude-test-20240101",
    )


def test_anthropic_without_system_or_key(make: Any) -> None:
    provider, recorder = make(AnthropicProvider, reply(200, message()), api_key_env=None)
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8)

    provider.complete(request)

    sent_body = recorder.last_json()
    assert "system" not in sent_body
    assert sent_body["messages"] == [{"role": "user", "content": "hi"}]
    assert "x-api-key" not in recorder.last.headers
    assert recorder.last.headers["anthropic-version"] == ANTHROPIC_VERSION


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_use"),
        (None, None),
    ],
)
def test_anthropic_stop_reason_mapping(
    make: Any, stop_reason: str | None, finish_reason: str | None
) -> None:
    provider, _ = make(AnthropicProvider, reply(200, message(stop_reason=stop_reason)))

    assert provider.complete(REQUEST).finish_reason == finish_reason


@pytest.mark.parametrize(
    "usage",
    [None, {"input_tokens": 17}, {"input_tokens": "17", "output_tokens": "4"}],
    ids=["absent", "partial", "strings"],
)
def test_anthropic_usage_missing_is_estimated(make: Any, usage: Any) -> None:
    provider, _ = make(AnthropicProvider, reply(200, message(usage=usage, model=None)))

    response = provider.complete(REQUEST)

    assert response.tokens_estimated is True
    assert response.input_tokens == count_message_tokens(REQUEST.messages) > 0
    assert response.output_tokens == count_tokens("Paris.") > 0
    assert response.model == "test-model"


def test_anthropic_no_text_blocks_is_empty_content(make: Any) -> None:
    provider, _ = make(AnthropicProvider, reply(200, message(content=[])))

    assert provider.complete(REQUEST).content == ""


@pytest.mark.parametrize("status", [500, 503, 529])
def test_anthropic_overloaded_and_5xx_are_transient(make: Any, status: int) -> None:
    provider, _ = make(
        AnthropicProvider, reply(status, anthropic_error("Overloaded", "overloaded_error"))
    )

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.status_code == status
    assert "Overloaded" in str(caught.value)


def test_anthropic_429_retry_after(make: Any) -> None:
    provider, _ = make(
        AnthropicProvider,
        reply(429, anthropic_error("rate", "rate_limit_error"), headers={"retry-after": "13"}),
    )

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retry_after == 13.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_anthropic_4xx_is_permanent_with_provider_message(make: Any, status: int) -> None:
    provider, _ = make(AnthropicProvider, reply(status, anthropic_error("max_tokens: too big")))

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.status_code == status
    assert "max_tokens: too big" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        json.dumps([]).encode(),
        json.dumps({"type": "message"}).encode(),
        json.dumps({"content": "Paris."}).encode(),
        json.dumps(message(content=[{"type": "text", "text": 42}])).encode(),
        json.dumps(message(content=[{"type": "text", "text": None}])).encode(),
    ],
    ids=["non-json", "list", "no-content", "content-string", "text-int", "text-null"],
)
def test_anthropic_malformed_body(make: Any, body: bytes) -> None:
    provider, _ = make(AnthropicProvider, reply(200, body))

    with pytest.raises(MalformedResponseError) as caught:
        provider.complete(REQUEST)

    assert caught.value.retryable


def test_anthropic_connect_error_is_transient(make: Any) -> None:
    provider, _ = make(AnthropicProvider, raising(httpx.ConnectError))

    with pytest.raises(TransientProviderError):
        provider.complete(REQUEST)


# ---------------------------------------------------------------- provider_for


@pytest.mark.parametrize(
    ("protocol", "cls"), [("openai", OpenAIProvider), ("anthropic", AnthropicProvider)]
)
def test_provider_for_picks_adapter(protocol: str, cls: type[Provider]) -> None:
    with httpx.Client(transport=httpx.MockTransport(reply(500))) as client:
        ep = endpoint(protocol)
        provider = provider_for(ep, client)

    assert type(provider) is cls
    assert provider.endpoint is ep


# ---------------------------------------------------------------- parse_retry_after

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("  7 ", 7.0),
        ("120", 120.0),
        ("-3", 0.0),
        ("-0.5", 0.0),
    ],
)
def test_parse_retry_after_numbers(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:30 GMT", 0.0),
        ("Wed, 21 Oct 2015 08:27:30 GMT", 3600.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 09:28:00 +0200", 30.0),
    ],
    ids=["future", "now", "hour", "past-clamps", "rfc850", "offset"],
)
def test_parse_retry_after_http_date_relative_to_now(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


def test_parse_retry_after_http_date_defaults_to_wall_clock() -> None:
    value = http_date(datetime.now(UTC) + timedelta(seconds=90))

    seconds = parse_retry_after(value)

    assert seconds is not None
    assert 0 < seconds <= 91


@pytest.mark.parametrize("value", ["soon", "", "   ", "Wed, 99 Foo", "2 seconds", "1,5"])
def test_parse_retry_after_garbage_is_none(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_none_is_none() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after(None, now=NOW) is None


@pytest.fixture
def non_utc_local_time() -> Iterator[None]:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is unavailable on this platform")
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("non_utc_local_time")
def test_parse_retry_after_asctime_date_is_utc() -> None:
    assert parse_retry_after("Wed Oct 21 07:28:00 2015", now=NOW) == pytest.approx(30.0)


# ---------------------------------------------------------------- secrets never leave in errors

ECHOED_KEY = "live-7f3a9c2e5b1d4a8f0e6c"  # not sk-shaped: only knowing the key can remove it


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A local port that accepts connections and never answers: h11 validates the request's
    headers before anything is read, so a real client gets httpx's real LocalProtocolError."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def assert_nowhere(secret: str, error: BaseException) -> None:
    """Not in the message, nor in any traceback of it (causes and contexts included)."""
    shown = "".join(traceback.format_exception(error))
    assert secret not in str(error)
    assert secret not in shown
    assert secret.strip() not in shown


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
@pytest.mark.parametrize(
    "body",
    [
        lambda key: {"error": {"message": f"Incorrect API key provided: {key}.", "type": "x"}},
        lambda key: {"type": "error", "error": {"type": "auth", "message": f"bad key {key}"}},
        lambda key: {"error": f"key {key} revoked"},
        lambda key: {"detail": f"key {key} revoked"},
        lambda key: f"<html>key {key} revoked</html>",
    ],
    ids=["openai", "anthropic", "error-string", "other-json", "text"],
)
def test_a_body_echoing_the_key_is_scrubbed(
    make: Any, monkeypatch: Any, cls: type[Provider], body: Callable[[str], Any]
) -> None:
    monkeypatch.setenv(KEY_ENV, ECHOED_KEY)
    provider, _ = make(cls, reply(401, body(ECHOED_KEY)), api_key_env=KEY_ENV)

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert caught.value.status_code == 401
    assert "[REDACTED]" in str(caught.value)
    assert_nowhere(ECHOED_KEY, caught.value)


def test_a_key_straddling_the_excerpt_cut_leaves_no_prefix(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(KEY_ENV, ECHOED_KEY)
    body = "x" * 190 + ECHOED_KEY + " tail"  # the key crosses the 200-character excerpt
    provider, _ = make(OpenAIProvider, reply(502, body), api_key_env=KEY_ENV)

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert ECHOED_KEY[:6] not in str(caught.value)


def test_a_proxy_echoing_the_request_headers_loses_the_authorization(
    make: Any, monkeypatch: Any
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=openai_error(f"headers were {dict(request.headers)}"))

    provider, recorder = make(OpenAIProvider, echo, api_key_env=None)
    # A key routeq does not know as a secret: only its header shape can give it away.
    monkeypatch.setattr(provider, "_api_key", lambda: ECHOED_KEY)

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert recorder.last.headers["authorization"] == f"Bearer {ECHOED_KEY}"
    assert "'authorization': '[REDACTED]'" in str(caught.value)
    assert_nowhere(ECHOED_KEY, caught.value)


def test_another_configured_key_is_scrubbed_too(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("ROUTEQ_TEST_PROVIDER_OTHER_KEY", ECHOED_KEY)
    register_secret_env(["ROUTEQ_TEST_PROVIDER_OTHER_KEY"])  # as loading the settings does
    provider, _ = make(OpenAIProvider, reply(403, openai_error(f"not {ECHOED_KEY}")))

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert_nowhere(ECHOED_KEY, caught.value)


def test_a_transport_error_quoting_a_credential_is_scrubbed(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(KEY_ENV, ECHOED_KEY)

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused {request.headers['authorization']}")

    provider, _ = make(OpenAIProvider, fail, api_key_env=KEY_ENV)

    with pytest.raises(TransientProviderError) as caught:
        provider.complete(REQUEST)

    assert ECHOED_KEY not in str(caught.value)
    assert "proxy refused Bearer [REDACTED]" in str(caught.value)


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", " "], ids=["newline", "crlf", "space"])
def test_a_key_that_cannot_be_sent_is_refused_at_call_time(
    make: Any, monkeypatch: Any, cls: type[Provider], suffix: str
) -> None:
    provider, recorder = make(cls, reply(200, completion()), api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, ECHOED_KEY + suffix)  # changed after the config was validated

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert f"{KEY_ENV} ends with" in str(caught.value)
    assert not caught.value.retryable
    assert recorder.requests == []
    assert_nowhere(ECHOED_KEY, caught.value)


def real_illegal_header_error(port: int, key: str) -> httpx.LocalProtocolError:
    """What httpx itself raises for a header value with a newline: the proof that its text
    holds the whole key, so the provider tests below are about the real message."""
    with httpx.Client() as client:
        try:
            client.post(f"http://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {key}"})
        except httpx.LocalProtocolError as exc:
            return exc
    raise AssertionError("httpx sent a header value with a newline")


@pytest.mark.parametrize("cls", [OpenAIProvider, AnthropicProvider])
@pytest.mark.parametrize("key_in_env", [True, False], ids=["known-key", "unknown-key"])
def test_an_illegal_header_value_is_permanent_and_never_quotes_the_key(
    monkeypatch: Any, listening_port: int, cls: type[Provider], key_in_env: bool
) -> None:
    bad_key = ECHOED_KEY + "\n"
    assert ECHOED_KEY in str(real_illegal_header_error(listening_port, bad_key))
    if key_in_env:
        monkeypatch.setenv(KEY_ENV, bad_key)
    else:
        monkeypatch.delenv(KEY_ENV, raising=False)
    with httpx.Client() as client:
        protocol = "anthropic" if cls is AnthropicProvider else "openai"
        provider = cls(
            endpoint(protocol, base_url=f"http://127.0.0.1:{listening_port}/v1", timeout_s=2.0),
            client,
        )
        # Past the call-time check (as a key from elsewhere would be): httpx must refuse it.
        monkeypatch.setattr(provider, "_api_key", lambda: bad_key)
        attempts: list[Attempt] = []

        with pytest.raises(PermanentProviderError) as caught:
            complete_with_retries(
                provider, REQUEST, RetryConfig(max_retries=3), attempts.append, sleep=lambda s: None
            )

    error = caught.value
    assert len(attempts) == 1  # never retried: it can never succeed
    assert not error.retryable
    assert "LocalProtocolError" in str(error) and "[REDACTED]" in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert_nowhere(ECHOED_KEY, error)


def test_a_non_ascii_header_value_is_permanent(make: Any, monkeypatch: Any) -> None:
    provider, recorder = make(OpenAIProvider, reply(200, completion()))
    monkeypatch.setattr(provider, "_api_key", lambda: ECHOED_KEY + "\u00e9")

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert "UnicodeEncodeError" in str(caught.value)
    assert recorder.requests == []
    assert_nowhere(ECHOED_KEY, caught.value)


@pytest.mark.parametrize("base_url", ["http://llm.example.test:abc/v1", "http://[::1/v1"])
def test_an_invalid_url_is_permanent(make: Any, base_url: str) -> None:
    provider, recorder = make(OpenAIProvider, reply(200, completion()), base_url=base_url)
    attempts: list[Attempt] = []

    with pytest.raises(PermanentProviderError) as caught:
        complete_with_retries(
            provider, REQUEST, RetryConfig(max_retries=3), attempts.append, sleep=lambda s: None
        )

    assert "InvalidURL" in str(caught.value) and "check base_url" in str(caught.value)
    assert len(attempts) == 1
    assert recorder.requests == []


# ---------------------------------------------------------------- context length exceeded
#
# Bodies as the servers send them (the numbers vary; the shapes and the wording are theirs).

OPENAI_OVERFLOW = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, you requested "
        "9024 tokens (8000 in the messages, 1024 in the completion). Please reduce the length "
        "of the messages or completion.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
CONTEXT_OVERFLOWS = {
    "openai": (400, OPENAI_OVERFLOW, 8192, 8000),
    "openai-code-only": (
        400,
        {
            "error": {
                "message": "Invalid request.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
        },
        None,
        None,
    ),
    "openai-responses": (
        400,
        openai_error(
            "Your input exceeds the context window of this model. Please adjust your "
            "input and try again."
        ),
        None,
        None,
    ),
    "vllm-old": (
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 2048 tokens. "
            "However, you requested 2300 tokens (1276 in the messages, 1024 in the completion). "
            "Please reduce the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        2048,
        1276,
    ),
    "vllm-new": (
        400,
        {
            "error": {
                "message": "'max_tokens' or 'max_completion_tokens' is too large: 1024. This "
                "model's maximum context length is 2048 tokens and your request has 1500 "
                "input tokens (1024 > 2048 - 1500). None",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        },
        2048,
        1500,
    ),
    "llama.cpp": (
        400,
        {
            "error": {
                "code": 400,
                "message": "request (4476 tokens) exceeds the available context "
                "size (4096 tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 4476,
                "n_ctx": 4096,
            }
        },
        4096,
        4476,
    ),
    "llama.cpp-old": (
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "invalid_request_error",
            }
        },
        None,
        None,
    ),
    "ollama": (
        400,
        {"error": "prompt too long; exceeded max context length by 310 tokens"},
        None,
        None,
    ),
    "ollama-input": (400, {"error": "the input length exceeds the context length"}, None, None),
    "tgi": (
        422,
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
            "Given: 3900 `inputs` tokens and 1024 `max_new_tokens`",
            "error_type": "validation",
        },
        4096,
        3900,
    ),
    "mistral": (
        400,
        {
            "object": "error",
            "message": "Prompt contains 40000 tokens and 0 draft tokens, too "
            "large for model with 32768 maximum context length",
            "type": "invalid_request_error",
        },
        32768,
        40000,
    ),
    "gemini": (  # a list body: no structured field to read, its words still tell
        400,
        [
            {
                "error": {
                    "code": 400,
                    "message": "The input token count (1200000) exceeds the maximum "
                    "number of tokens allowed (1048576).",
                    "status": "INVALID_ARGUMENT",
                }
            }
        ],
        None,
        None,
    ),
    "plain-text": (400, "This model's maximum context length is 4096 tokens.", 4096, None),
}


@pytest.mark.parametrize(
    ("status", "body", "window", "prompt"),
    list(CONTEXT_OVERFLOWS.values()),
    ids=list(CONTEXT_OVERFLOWS),
)
def test_openai_compatible_context_overflow_is_its_own_error(
    make: Any, status: int, body: Any, window: int | None, prompt: int | None
) -> None:
    provider, _ = make(OpenAIProvider, reply(status, body))

    with pytest.raises(ContextLengthExceededError) as caught:
        provider.complete(REQUEST)

    error = caught.value
    assert isinstance(error, PermanentProviderError) and not error.retryable
    assert error.status_code == status
    assert str(error).startswith(f"HTTP {status} context length exceeded: ")
    assert (error.context_window, error.prompt_tokens) == (window, prompt)


def test_anthropic_prompt_too_long_is_context_length_exceeded(make: Any) -> None:
    body = anthropic_error("prompt is too long: 215000 tokens > 200000 maximum")
    provider, _ = make(AnthropicProvider, reply(400, body))

    with pytest.raises(ContextLengthExceededError) as caught:
        provider.complete(REQUEST)

    assert (caught.value.context_window, caught.value.prompt_tokens) == (200000, 215000)
    assert "prompt is too long" in str(caught.value)


def test_a_context_overflow_is_never_retried(make: Any) -> None:
    provider, recorder = make(OpenAIProvider, reply(400, OPENAI_OVERFLOW))
    attempts: list[Attempt] = []

    with pytest.raises(ContextLengthExceededError):
        complete_with_retries(
            provider, REQUEST, RetryConfig(max_retries=3), attempts.append, sleep=lambda s: None
        )

    assert len(attempts) == 1 and len(recorder.requests) == 1


def test_a_context_overflow_reported_with_a_5xx_is_not_retried_either(make: Any) -> None:
    # Some servers answer a prompt they cannot hold with 500: retrying cannot help there either.
    body = openai_error("the request exceeds the available context size, try increasing it")
    provider, recorder = make(OpenAIProvider, reply(500, body))
    attempts: list[Attempt] = []

    with pytest.raises(ContextLengthExceededError):
        complete_with_retries(
            provider, REQUEST, RetryConfig(max_retries=3), attempts.append, sleep=lambda s: None
        )

    assert len(attempts) == 1 and len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, openai_error("Invalid value for 'temperature': must be between 0 and 2.")),
        (
            400,
            openai_error(
                "max_tokens is too large: 999999. This model supports at most 4096 "
                "completion tokens."
            ),
        ),
        (400, anthropic_error("messages: text content blocks must be non-empty")),
        (404, openai_error("The model 'gpt-5-mini' does not exist")),
        (
            413,
            anthropic_error(
                "Request exceeds the maximum allowed number of bytes.", "request_too_large"
            ),
        ),
        (
            429,
            openai_error(
                "Rate limit reached for gpt-4o: Limit 30000, Requested 31000 tokens "
                "per min (TPM). Please reduce the length of the messages.",
                "tokens",
            ),
        ),
    ],
    ids=["bad-param", "max-tokens", "empty-block", "no-model", "too-many-bytes", "tpm-429"],
)
def test_other_errors_are_not_context_overflows(make: Any, status: int, body: Any) -> None:
    provider, _ = make(OpenAIProvider, reply(status, body))

    with pytest.raises(ProviderError) as caught:
        provider.complete(REQUEST)

    assert not isinstance(caught.value, ContextLengthExceededError)
    assert caught.value.retryable == (status == 429)


def test_a_context_overflow_message_is_scrubbed(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    body = openai_error(f"maximum context length is 4096 tokens (key {SECRET})")
    provider, _ = make(OpenAIProvider, reply(400, body), api_key_env=KEY_ENV)

    with pytest.raises(ContextLengthExceededError) as caught:
        provider.complete(REQUEST)

    assert SECRET not in str(caught.value)
    assert caught.value.context_window == 4096


def test_vllm_top_level_message_is_the_error_detail(make: Any) -> None:
    body = {"object": "error", "message": "model is warming up", "type": "BadRequestError"}
    provider, _ = make(OpenAIProvider, reply(400, body))

    with pytest.raises(PermanentProviderError) as caught:
        provider.complete(REQUEST)

    assert str(caught.value) == "HTTP 400: model is warming up"
