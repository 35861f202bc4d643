"""TierSlots: one tier's concurrency limit shared by every worker, against fakeredis.

Several ``FakeRedis`` clients on one ``FakeServer`` stand in for worker processes on different
machines. Lease expiry is driven by a fake clock (fakeredis reads ``time.time`` for both ``TIME``
and key expiry), so nothing here waits on a real lease except one short sanity check.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from routeq.errors import RouteqError
from routeq.worker.slots import (
    DEFAULT_PREFIX,
    MAX_HOLDER_LEN,
    SlotsUnavailableError,
    TierSlots,
)

if importlib.util.find_spec("lupa") is None:  # pragma: no cover - environment check
    raise ImportError(
        "tests/unit/test_slots.py runs the slot script's Lua inside fakeredis, which needs "
        "lupa: install the test extra (fakeredis[lua])"
    )


class FakeClock:
    """A settable ``time.time`` replacement; starts at the real time so expiries look real."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "time", fake)
    return fake


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def worker(server: fakeredis.FakeServer) -> Iterator[Callable[[], TierSlots]]:
    """Makes a TierSlots with its own client (its own "process") on the shared server."""
    clients: list[fakeredis.FakeRedis] = []

    def make() -> TierSlots:
        client = fakeredis.FakeRedis(server=server)
        clients.append(client)
        return TierSlots(client)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def raw(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    """A plain client for looking at the keys directly."""
    return fakeredis.FakeRedis(server=server)


def test_limit_holds_across_processes(clock: FakeClock, worker: Callable[[], TierSlots]) -> None:
    a, b, c, observer = worker(), worker(), worker(), worker()

    first = a.acquire("cheap", "q1:0", limit=2, lease_s=30)
    second = b.acquire("cheap", "q2:0", limit=2, lease_s=30)
    third = c.acquire("cheap", "q3:0", limit=2, lease_s=30)

    assert (first.granted, first.in_use) == (True, 1)
    assert (second.granted, second.in_use) == (True, 2)
    assert (third.granted, third.in_use) == (False, 2)
    assert set(observer.holders("cheap")) == {"q1:0", "q2:0"}


def test_tiers_count_separately(clock: FakeClock, worker: Callable[[], TierSlots]) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=30).granted
    assert not slots.acquire("cheap", "q2:0", limit=1, lease_s=30).granted
    assert slots.acquire("top", "q2:0", limit=1, lease_s=30).granted


def test_a_redelivered_holder_keeps_its_one_slot(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    first_run, redelivered, other = worker(), worker(), worker()
    assert first_run.acquire("cheap", "q1:0", limit=2, lease_s=10).granted

    again = redelivered.acquire("cheap", "q1:0", limit=2, lease_s=10)

    assert (again.granted, again.in_use) == (True, 1)
    assert list(other.holders("cheap")) == ["q1:0"]
    assert other.acquire("cheap", "q2:0", limit=2, lease_s=10).granted  # the second slot is free


def test_reacquiring_refreshes_the_lease_even_when_the_tier_is_full(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    holder, other = worker(), worker()
    assert holder.acquire("cheap", "q1:0", limit=1, lease_s=10).granted
    clock.advance(8)

    assert holder.acquire("cheap", "q1:0", limit=1, lease_s=10).granted  # heartbeat
    clock.advance(5)  # 13 s after the first acquire: the old lease would have ended

    assert not other.acquire("cheap", "q2:0", limit=1, lease_s=10).granted
    assert other.holders("cheap") == {"q1:0": pytest.approx(5.0, abs=0.002)}


def test_an_existing_holder_is_refreshed_after_the_limit_is_lowered(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=2, lease_s=10).granted
    assert slots.acquire("cheap", "q2:0", limit=2, lease_s=10).granted

    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=10).granted
    assert not slots.acquire("cheap", "q3:0", limit=1, lease_s=10).granted


def test_release_frees_the_slot_for_another_process(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    a, b = worker(), worker()
    assert a.acquire("cheap", "q1:0", limit=1, lease_s=30).granted
    assert not b.acquire("cheap", "q2:0", limit=1, lease_s=30).granted

    assert a.release("cheap", "q1:0") is True
    assert a.release("cheap", "q1:0") is False  # a second release is harmless
    assert b.acquire("cheap", "q2:0", limit=1, lease_s=30).granted


def test_releasing_an_unknown_holder_leaves_the_others(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=2, lease_s=30).granted
    assert slots.release("cheap", "q9:0") is False
    assert list(slots.holders("cheap")) == ["q1:0"]


def test_a_dead_workers_slot_frees_itself_when_its_lease_ends(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    killed, survivor = worker(), worker()
    assert killed.acquire("cheap", "q1:0", limit=1, lease_s=10).granted  # then SIGKILL: no release

    clock.advance(9.999)
    assert not survivor.acquire("cheap", "q2:0", limit=1, lease_s=10).granted
    clock.advance(0.002)
    assert survivor.acquire("cheap", "q2:0", limit=1, lease_s=10).granted
    assert list(survivor.holders("cheap")) == ["q2:0"]


def test_a_short_lease_expires_in_real_time(worker: Callable[[], TierSlots]) -> None:
    """The same as above without the fake clock: Redis's own TIME drives the expiry."""
    killed, survivor = worker(), worker()
    assert killed.acquire("cheap", "q1:0", limit=1, lease_s=0.05).granted
    time.sleep(0.15)
    assert survivor.acquire("cheap", "q2:0", limit=1, lease_s=30).granted


def test_the_retry_hint_is_the_earliest_lease_end(
    clock: FakeClock, worker: Callable[[], TierSlots]
) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=2, lease_s=10).granted
    clock.advance(3)
    assert slots.acquire("cheap", "q2:0", limit=2, lease_s=10).granted

    full = slots.acquire("cheap", "q3:0", limit=2, lease_s=10)

    assert not full.granted
    assert full.retry_after == pytest.approx(7.0, abs=0.002)  # q1:0's lease, not q2:0's


def test_the_retry_hint_has_a_floor(clock: FakeClock, server: fakeredis.FakeServer) -> None:
    slots = TierSlots(fakeredis.FakeRedis(server=server))
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=10).granted
    clock.advance(9.9)
    assert slots.acquire("cheap", "q2:0", limit=1, lease_s=10).retry_after == 0.5

    patient = TierSlots(fakeredis.FakeRedis(server=server), min_retry_s=2.0)
    assert patient.acquire("cheap", "q2:0", limit=1, lease_s=10).retry_after == 2.0


def test_a_granted_slot_has_no_wait(clock: FakeClock, worker: Callable[[], TierSlots]) -> None:
    assert worker().acquire("cheap", "q1:0", limit=1, lease_s=10).retry_after == 0.0


def test_the_key_expires_with_the_last_lease(
    clock: FakeClock, worker: Callable[[], TierSlots], raw: fakeredis.FakeRedis
) -> None:
    slots = worker()
    key = DEFAULT_PREFIX + "cheap"
    assert slots.acquire("cheap", "q1:0", limit=2, lease_s=10).granted
    assert raw.pttl(key) == pytest.approx(10_000, abs=2)
    assert slots.acquire("cheap", "q2:0", limit=2, lease_s=60).granted
    assert raw.pttl(key) == pytest.approx(60_000, abs=2)  # the latest lease, not the first
    assert slots.acquire("cheap", "q2:0", limit=2, lease_s=20).granted
    assert raw.pttl(key) == pytest.approx(20_000, abs=2)  # a shorter refresh shortens it again

    clock.advance(20.001)  # both holders died without releasing

    assert raw.exists(key) == 0
    assert raw.keys("*") == []


def test_releasing_the_last_holder_removes_the_key(
    clock: FakeClock, worker: Callable[[], TierSlots], raw: fakeredis.FakeRedis
) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=2, lease_s=10).granted
    slots.release("cheap", "q1:0")
    assert raw.keys("*") == []


def test_a_denied_acquire_prunes_expired_holders_and_keeps_the_ttl(
    clock: FakeClock, worker: Callable[[], TierSlots], raw: fakeredis.FakeRedis
) -> None:
    slots = worker()
    key = DEFAULT_PREFIX + "cheap"
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=5).granted
    clock.advance(1)
    assert not slots.acquire("cheap", "q2:0", limit=1, lease_s=50).granted
    assert raw.zcard(key) == 1
    assert raw.pttl(key) == pytest.approx(4_000, abs=2)


def test_the_prefix_namespaces_the_keys(
    clock: FakeClock, server: fakeredis.FakeServer, raw: fakeredis.FakeRedis
) -> None:
    slots = TierSlots(fakeredis.FakeRedis(server=server), prefix="staging:slots:")
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=10).granted
    assert raw.keys("*") == [b"staging:slots:cheap"]
    assert slots.key("cheap") == "staging:slots:cheap"


def test_holders_only_stores_ids(
    clock: FakeClock, worker: Callable[[], TierSlots], raw: fakeredis.FakeRedis
) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=10).granted
    assert raw.zrange(DEFAULT_PREFIX + "cheap", 0, -1) == [b"q1:0"]


def test_holders_works_with_decoded_responses(
    clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    slots = TierSlots(fakeredis.FakeRedis(server=server, decode_responses=True))
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=10).granted
    clock.advance(4)
    assert slots.holders("cheap") == {"q1:0": pytest.approx(6.0, abs=0.002)}
    assert slots.holders("idle") == {}


def test_the_script_is_reloaded_after_redis_loses_it(
    clock: FakeClock, worker: Callable[[], TierSlots], raw: fakeredis.FakeRedis
) -> None:
    slots = worker()
    assert slots.acquire("cheap", "q1:0", limit=2, lease_s=10).granted
    raw.script_flush()  # as after a Redis restart or failover
    assert slots.acquire("cheap", "q2:0", limit=2, lease_s=10).granted
    assert not slots.acquire("cheap", "q3:0", limit=2, lease_s=10).granted


def test_concurrent_workers_never_exceed_the_limit(server: fakeredis.FakeServer) -> None:
    """Eight threads, each with its own client, hammer a limit of three."""
    limit, workers, rounds = 3, 8, 15
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    done: list[int] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        nonlocal in_flight, peak
        client = fakeredis.FakeRedis(server=server)
        slots = TierSlots(client, min_retry_s=0.001)
        try:
            for n in range(rounds):
                holder = f"q{index}:{n}"
                while not slots.acquire("cheap", holder, limit=limit, lease_s=60).granted:
                    time.sleep(0.0005)
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                time.sleep(0.0005)
                with lock:
                    in_flight -= 1
                assert slots.release("cheap", holder)
            done.append(index)
        except BaseException as error:  # surfaced below: a thread's failure must fail the test
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(done) == list(range(workers))
    assert 1 <= peak <= limit
    assert TierSlots(fakeredis.FakeRedis(server=server)).holders("cheap") == {}


def test_an_unreachable_redis_raises_a_retryable_error(
    server: fakeredis.FakeServer, worker: Callable[[], TierSlots]
) -> None:
    slots = worker()
    server.connected = False

    with pytest.raises(SlotsUnavailableError) as caught:
        slots.acquire("cheap", "q1:0", limit=1, lease_s=10)

    assert isinstance(caught.value, RouteqError)
    assert caught.value.retry_after == 2.0
    assert "tier 'cheap'" in str(caught.value)
    with pytest.raises(SlotsUnavailableError):
        slots.release("cheap", "q1:0")
    with pytest.raises(SlotsUnavailableError):
        slots.holders("cheap")

    server.connected = True
    assert slots.acquire("cheap", "q1:0", limit=1, lease_s=10).granted


def test_a_real_client_with_no_server_raises_the_same_error(tmp_path: Path) -> None:
    """redis-py's own connection error (no Redis behind a socket path) is translated too."""
    client = redis.Redis(
        unix_socket_path=str(tmp_path / "absent.sock"),
        socket_timeout=1,
        retry=Retry(NoBackoff(), retries=0),  # redis-py's own retries only slow the test down
    )
    slots = TierSlots(client, unavailable_retry_s=5.0)
    with pytest.raises(SlotsUnavailableError) as caught:
        slots.acquire("cheap", "q1:0", limit=1, lease_s=10)
    assert caught.value.retry_after == 5.0
    client.close()


@pytest.mark.parametrize(
    ("tier", "holder", "limit", "lease_s"),
    [
        ("cheap", "q1:0", 0, 10.0),
        ("cheap", "q1:0", 1, 0.0),
        ("cheap", "q1:0", 1, -1.0),
        ("cheap", "q1:0", 1, math.nan),
        ("cheap", "q1:0", 1, math.inf),
        ("cheap", "", 1, 10.0),
        ("cheap", "x" * (MAX_HOLDER_LEN + 1), 1, 10.0),
        ("", "q1:0", 1, 10.0),
    ],
)
def test_bad_arguments_are_refused(
    worker: Callable[[], TierSlots], tier: str, holder: str, limit: int, lease_s: float
) -> None:
    with pytest.raises(ValueError):
        worker().acquire(tier, holder, limit=limit, lease_s=lease_s)


def test_bad_retry_settings_are_refused(raw: fakeredis.FakeRedis) -> None:
    with pytest.raises(ValueError):
        TierSlots(raw, min_retry_s=0)
    with pytest.raises(ValueError):
        TierSlots(raw, unavailable_retry_s=-1)
