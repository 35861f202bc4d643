"""OpenAI-compatible chat completions: OpenAI, OpenRouter, vLLM, Ollama, llama.cpp, LiteLLM."""

from __future__ import annotations

from typing import Any

from routeq.providers.base import REQUEST_ID_HEADER, ChatRequest, ChatResponse, Provider, require
from routeq.tokens import count_message_tokens, count_tokens


class OpenAIProvider(Provider):
    def complete(self, request: ChatRequest) -> ChatResponse:
        headers = {"Accept": "application/json"}
        key = self._api_key()
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.request_id is not None:
            headers[REQUEST_ID_HEADER] = request.request_id
        data = self._post("/chat/completions", headers, body)
        return parse_chat_completion(data, request, self.endpoint.model)


def parse_chat_completion(data: Any, request: ChatRequest, model: str) -> ChatResponse:
    """Read a chat.completion body; estimate usage with the tokenizer when it is missing."""
    require(isinstance(data, dict), "body is not a JSON object")
    choices = data.get("choices")
    require(isinstance(choices, list) and len(choices) > 0, "no 'choices'")
    choice = choices[0]
    require(isinstance(choice, dict), "choices[0] is not an object")
    message = choice.get("message")
    require(isinstance(message, dict), "choices[0].message is missing")
    content = message.get("content")
    require(content is None or isinstance(content, str), "message.content is not a string")
    text = content or ""
    usage = data.get("usage")
    if (
        isinstance(usage, dict)
        and isinstance(usage.get("prompt_tokens"), int)
        and isinstance(usage.get("completion_tokens"), int)
    ):
        input_tokens, output_tokens, estimated = (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            False,
        )
    else:
        input_tokens = count_message_tokens(request.messages)
        output_tokens, estimated = count_tokens(text), True
    return ChatResponse(
        content=text,
        finish_reason=choice.get("finish_reason"),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=estimated,
        model=str(data.get("model") or model),
    )
