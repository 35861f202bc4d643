"""routeq: route each LLM query to the cheapest tier that answers it well, and prove it.

Public API: ``Client`` to submit and wait, ``Settings``/``load_settings`` for configuration, and
the error types. Names load on first use, so importing a pure module (``routeq.policies``,
``routeq.judges``, ``routeq.pricing``) does not pull in Celery, SQLAlchemy or the drivers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routeq.client import Client, QueryHandle, Result
    from routeq.config import Settings, TierConfig, load_settings
    from routeq.errors import (
        ConfigError,
        InvalidQueryError,
        PermanentProviderError,
        ProviderError,
        RouteqError,
        TransientProviderError,
        UnknownQueryError,
    )

_HOMES = {
    "Client": "routeq.client",
    "QueryHandle": "routeq.client",
    "Result": "routeq.client",
    "Settings": "routeq.config",
    "TierConfig": "routeq.config",
    "load_settings": "routeq.config",
    "ConfigError": "routeq.errors",
    "InvalidQueryError": "routeq.errors",
    "PermanentProviderError": "routeq.errors",
    "ProviderError": "routeq.errors",
    "RouteqError": "routeq.errors",
    "TransientProviderError": "routeq.errors",
    "UnknownQueryError": "routeq.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'routeq' has no attribute {name!r}")
    return getattr(import_module(home), name)


__all__ = [
    "Client",
    "ConfigError",
    "InvalidQueryError",
    "PermanentProviderError",
    "ProviderError",
    "QueryHandle",
    "Result",
    "RouteqError",
    "Settings",
    "TierConfig",
    "TransientProviderError",
    "UnknownQueryError",
    "load_settings",
]
