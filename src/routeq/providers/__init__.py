"""Model provider adapters over httpx, and the retry loop around them."""

from __future__ import annotations

import httpx

from routeq.config import ModelEndpoint
from routeq.providers.anthropic import AnthropicProvider
from routeq.providers.base import ChatRequest, ChatResponse, Provider, parse_retry_after
from routeq.providers.openai import OpenAIProvider
from routeq.providers.retry import Attempt, backoff_delay, complete_with_retries

_ADAPTERS: dict[str, type[Provider]] = {"openai": OpenAIProvider, "anthropic": AnthropicProvider}


def provider_for(endpoint: ModelEndpoint, http: httpx.Client) -> Provider:
    """The adapter for an endpoint's protocol."""
    return _ADAPTERS[endpoint.provider](endpoint, http)


__all__ = [
    "AnthropicProvider",
    "Attempt",
    "ChatRequest",
    "ChatResponse",
    "OpenAIProvider",
    "Provider",
    "backoff_delay",
    "complete_with_retries",
    "parse_retry_after",
    "provider_for",
]
