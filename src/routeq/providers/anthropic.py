"""Anthropic's Messages API."""

from __future__ import annotations

from typing import Any

from routeq.providers.base import REQUEST_ID_HEADER, ChatRequest, ChatResponse, Provider, require
from routeq.tokens import count_message_tokens, count_tokens

ANTHROPIC_VERSION = "2023-06-01"
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


class AnthropicProvider(Provider):
    def complete(self, request: ChatRequest) -> ChatResponse:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "Accept": "application/json"}
        key = self._api_key()
        if key is not None:
            headers["x-api-key"] = key
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "max_tokens": request.max_tokens,
            "messages": [m for m in request.messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.request_id is not None:
            headers[REQUEST_ID_HEADER] = request.request_id
        data = self._post("/messages", headers, body)
        return parse_message(data, request, self.endpoint.model)


def parse_message(data: Any, request: ChatRequest, model: str) -> ChatResponse:
    """Read a Messages API body: text blocks joined, stop_reason mapped to OpenAI's names."""
    require(isinstance(data, dict), "body is not a JSON object")
    blocks = data.get("content")
    require(isinstance(blocks, list), "no 'content' list")
    texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    require(all(isinstance(t, str) for t in texts), "a text block's text is not a string")
    text = "".join(texts)
    stop = data.get("stop_reason")
    usage = data.get("usage")
    if (
        isinstance(usage, dict)
        and isinstance(usage.get("input_tokens"), int)
        and isinstance(usage.get("output_tokens"), int)
    ):
        input_tokens, output_tokens, estimated = (
            usage["input_tokens"],
            usage["output_tokens"],
            False,
        )
    else:
        input_tokens = count_message_tokens(request.messages)
        output_tokens, estimated = count_tokens(text), True
    return ChatResponse(
        content=text,
        finish_reason=_FINISH_REASONS.get(str(stop), stop if isinstance(stop, str) else None),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=estimated,
        model=str(data.get("model") or model),
    )
