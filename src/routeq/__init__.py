"""routeq: route each LLM query to the cheapest tier that answers it well, and prove it.

Public API: ``Client`` to submit and wait, ``Settings``/``load_settings`` for configuration, and
the error types.
"""

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
