"""A redis-py client for a broker URL, for the code that talks to Redis itself (metrics, check).

Celery (kombu) accepts ``redis+socket:///path`` for a unix socket, the form the embedded Redis
uses; redis-py's ``from_url`` does not, so both forms are handled here, once.
"""

from __future__ import annotations

import redis

_SOCKET_SCHEME = "redis+socket://"


def broker_client(broker_url: str, timeout_s: float = 5.0) -> redis.Redis:
    """A client for ``broker_url`` whose connects and commands give up after ``timeout_s``."""
    if broker_url.startswith(_SOCKET_SCHEME):
        return redis.Redis(
            unix_socket_path=broker_url.removeprefix(_SOCKET_SCHEME),
            socket_timeout=timeout_s,
        )
    return redis.Redis.from_url(
        broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
