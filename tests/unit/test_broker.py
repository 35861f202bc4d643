"""Broker URLs in both forms routeq accepts become redis-py clients with timeouts."""

from __future__ import annotations

from routeq.broker import broker_client


def test_kombus_unix_socket_form_becomes_a_socket_client() -> None:
    client = broker_client("redis+socket:///tmp/state/redis/redis.sock", timeout_s=2.5)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["path"] == "/tmp/state/redis/redis.sock"
    assert kwargs["socket_timeout"] == 2.5


def test_a_redis_url_keeps_host_database_and_password() -> None:
    client = broker_client("redis://:pw@10.0.0.5:6380/3", timeout_s=1.0)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "10.0.0.5",
        6380,
        3,
        "pw",
    )
    assert kwargs["socket_timeout"] == 1.0
