"""A minimal valid tier as a dict, for tests that build ladders by hand."""

from __future__ import annotations

from typing import Any


def tier_dict(name: str, context_window: int = 1000, **extra: Any) -> dict[str, Any]:
    """A tier on a dead local port (never called by unit tests); ``extra`` overrides any field."""
    return {
        "name": name,
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "model": f"model-{name}",
        "input_price_per_mtok": "1",
        "output_price_per_mtok": "1",
        "context_window": context_window,
        "max_output_tokens": 1024,
        **extra,
    }
