"""The provider guard in Redis (``worker.guard.RedisGuard``) keeps ``EndpointState``'s rules
for every process at once: its Lua scripts, on the real server's clock."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import redis

from routeq.config import ModelEndpoint, ProtectionConfig
from routeq.worker.guard import RedisGuard

pytestmark = pytest.mark.integration


def endpoint(name: str, **limits: int) -> ModelEndpoint:
    return ModelEndpoint(
        provider="openai",
        base_url="http://user:secret@127.0.0.1:9/v1",
        model=name,
        input_price_per_mtok=Decimal(1),
        output_price_per_mtok=Decimal(1),
        timeout_s=0.5,
        **limits,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(broker_url: str) -> redis.Redis:
    return redis.Redis.from_url(broker_url)


def test_concurrent_workers_never_exceed_the_rate(client: redis.Redis) -> None:
    guard = RedisGuard(client, ProtectionConfig(), prefix="test:guard:rate:")
    limited = endpoint("rate", requests_per_minute=1200)  # one every 50 ms
    client.delete(guard.key(limited))
    granted_at: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 2.0

    def hammer() -> None:
        own = redis.Redis(connection_pool=client.connection_pool)
        mine = RedisGuard(own, ProtectionConfig(), prefix="test:guard:rate:")
        while time.monotonic() < stop:
            if mine.admit(limited, 1).granted:
                with lock:
                    granted_at.append(time.monotonic())

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 2 s at 20 a second: 40, plus two; paced: any three span one interval (Redis's clock,
    # seen here with the slack of a thread switch)
    assert 36 <= len(granted_at) <= 42, len(granted_at)
    spans = [granted_at[i + 2] - granted_at[i] for i in range(len(granted_at) - 2)]
    assert sorted(spans)[len(spans) // 10] > 0.04


def test_breaker_retry_after_and_peek_as_specified(client: redis.Redis) -> None:
    protection = ProtectionConfig(breaker_failures=2, breaker_open_s=0.3)
    guard = RedisGuard(client, protection, prefix="test:guard:breaker:")
    down = endpoint("down")
    client.delete(guard.key(down))
    assert "secret" not in guard.key(down) and "127.0.0.1" not in guard.key(down)
    guard.report(down, "failed")
    assert guard.admit(down, 1).granted
    guard.report(down, "failed")
    refused = guard.admit(down, 1)
    assert refused.why == "breaker" and 0.2 < refused.wait_s <= 0.3
    time.sleep(0.35)
    assert guard.admit(down, 1, take=False).granted  # a peek does not take the probe
    assert guard.admit(down, 1).granted  # the probe
    assert guard.admit(down, 1).why == "breaker"  # the others wait for it
    guard.report(down, "ok")
    assert guard.admit(down, 1).granted
    guard.report(down, "limited", 0.4)
    blocked = guard.admit(down, 1)
    assert blocked.why == "retry-after" and 0.3 < blocked.wait_s <= 0.4
    assert client.pttl(guard.key(down)) > 0  # an idle endpoint's state expires


def test_an_unreachable_redis_holds_calls_back() -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)
    guard = RedisGuard(dead, ProtectionConfig())
    admission = guard.admit(endpoint("x"), 1)
    assert (admission.granted, admission.why) == (False, "unreachable")
    guard.report(endpoint("x"), "failed")  # dropped, without raising


def test_the_exporter_reads_each_endpoints_breaker_and_block(client: redis.Redis) -> None:
    from routeq.worker.guard import endpoint_health

    guard = RedisGuard(client, ProtectionConfig(breaker_failures=2), prefix="test:guard:h:")
    down, slow, fine = endpoint("down"), endpoint("slow"), endpoint("fine")
    for e in (down, slow, fine):
        client.delete(guard.key(e))
    guard.report(down, "failed")
    guard.report(down, "failed")
    guard.report(slow, "limited", 30.0)
    guard.report(slow, "failed")
    health = endpoint_health(client, [down, slow, fine], prefix="test:guard:h:")
    assert [(h.breaker_open, h.failures) for h in health] == [(True, 2), (False, 1), (False, 0)]
    assert 29 < health[1].blocked_s <= 30 and health[0].blocked_s == health[2].blocked_s == 0


def test_the_look_before_a_claim_is_answered_by_a_call_just_admitted(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an endpoint without rate limits that just admitted a call of this process
    monkeypatch.setattr("routeq.worker.guard.PEEK_MEMO_S", 0.3)
    mine = RedisGuard(client, ProtectionConfig(), prefix="test:guard:memo:")
    other = RedisGuard(client, ProtectionConfig(), prefix="test:guard:memo:")
    plain, limited = endpoint("plain"), endpoint("limited", requests_per_minute=600)
    for e in (plain, limited):
        client.delete(mine.key(e))
    assert mine.admit(plain, 1).granted and mine.admit(limited, 1).granted
    # When another worker is told to wait
    other.report(plain, "limited", 5.0)
    other.report(limited, "limited", 5.0)
    # Then the look is answered from that admission, without asking Redis, for a moment
    assert mine.admit(plain, 1, take=False).granted
    assert other.admit(plain, 1, take=False).why == "retry-after"
    # but never for an endpoint with rate limits
    assert mine.admit(limited, 1, take=False).why == "retry-after"
    # nor once the moment has passed
    time.sleep(0.35)
    assert mine.admit(plain, 1, take=False).why == "retry-after"


def admitted_then_blocked(client: redis.Redis, prefix: str) -> tuple[RedisGuard, ModelEndpoint]:
    """A guard that just had a call admitted to an endpoint without rate limits, which another
    worker has since been told to leave alone for 5 s."""
    mine = RedisGuard(client, ProtectionConfig(), prefix=prefix)
    plain = endpoint("plain")
    client.delete(mine.key(plain))
    assert mine.admit(plain, 1).granted
    RedisGuard(client, ProtectionConfig(), prefix=prefix).report(plain, "limited", 5.0)
    return mine, plain


def test_a_failed_call_ends_the_looks_answered_without_redis(client: redis.Redis) -> None:
    mine, plain = admitted_then_blocked(client, "test:guard:memo2:")
    mine.report(plain, "failed")
    assert mine.admit(plain, 1, take=False).why == "retry-after"


def test_an_admission_refused_after_the_claim_ends_the_looks_answered_without_redis(
    client: redis.Redis,
) -> None:
    mine, plain = admitted_then_blocked(client, "test:guard:memo3:")
    assert mine.admit(plain, 1).why == "retry-after"  # the admission after a claim
    assert mine.admit(plain, 1, take=False).why == "retry-after"
