"""A distributed counting semaphore over Redis: one tier's ``max_concurrency`` for all workers.

Celery's ``--concurrency`` caps model calls per worker *process group*; a tier served by three
machines would run three times its ``max_concurrency`` against the provider. ``TierSlots`` keeps
the count in Redis instead, so every process on every machine draws from the same slots.

Design, and why:

* One sorted set per tier (``<prefix><tier>``), member = holder id, score = the holder's lease
  expiry in milliseconds of **Redis server time** (``TIME`` inside the script). Workers' clocks
  can disagree by seconds; the server's clock is the one every holder shares.
* One Lua script does prune-expired, check, and take in a single atomic step, so two workers can
  never both see ``limit - 1`` holders and both take the last slot.
* A slot is a *lease*: a worker killed with SIGKILL never calls ``release``, and its slot frees
  itself when the lease ends. Choose ``lease_s`` longer than the longest model call (timeout
  times retries); a longer call can keep its slot by calling ``acquire`` again with the same
  holder, which refreshes the lease.
* ``acquire`` is re-entrant per holder: Celery redelivers a task whose worker vanished (or whose
  ack was lost), and the redelivered run must not take a second slot for the same call. Holder
  ids are therefore per model call, e.g. ``"<query_id>:<seq>"`` -- ids only, never prompt text,
  since they are visible to anyone who can read Redis. The flip side: two live runs with the same
  holder share one slot, and the first ``release`` frees it.
* The key's expiry is kept at the latest lease end, so a tier that goes idle leaves nothing in
  Redis even if every holder died without releasing.
* If Redis cannot be reached, ``acquire`` raises :class:`SlotsUnavailableError` rather than
  letting the call through: failing open would mean unlimited concurrency (and provider 429s or
  bills) exactly when the system is already degraded. Callers treat it as "retry later".

Needs Redis >= 5 (scripts replicate their effects, so ``TIME`` may precede writes); on 3.2-4.x
the script switches effect replication on itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from routeq.errors import RouteqError

DEFAULT_PREFIX = "routeq:slots:"

# Holder ids are short identifiers; a long one is almost certainly text that does not belong in
# Redis (a prompt pasted in as an id), so it is refused instead of stored.
MAX_HOLDER_LEN = 200

# Errors that mean "Redis is not usable right now" as opposed to a bug in the request or script:
# no connection / timed out, and a replica that was read-only during a failover.
# (BusyLoadingError, Redis still loading its data set, is a ConnectionError subclass.)
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)

# KEYS[1] = the tier's sorted set; ARGV = holder, limit, lease in ms.
# Returns {granted (1/0), ms until the earliest lease ends (0 when granted), holders now}.
_ACQUIRE_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local holder = ARGV[1]
local limit = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local count = redis.call('ZCARD', key)
if redis.call('ZSCORE', key, holder) or count < limit then
  redis.call('ZADD', key, now + lease_ms, holder)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, tonumber(last[2]))
  return {1, 0, redis.call('ZCARD', key)}
end
local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, math.max(tonumber(first[2]) - now, 1), count}
"""


class SlotsUnavailableError(RouteqError):
    """Redis (the slot store) could not be reached or written; no slot was taken.

    Treat it like a full tier: retry the task after ``retry_after`` seconds. It is deliberately
    not "go ahead anyway" -- see the module docstring.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Acquired:
    """The outcome of :meth:`TierSlots.acquire`.

    ``retry_after`` (seconds, 0.0 when granted) is when the earliest current lease ends, but at
    least the store's ``min_retry_s``. It is an upper bound on the wait: holders usually
    ``release`` long before their lease ends, so callers may cap it (and add jitter, so that
    tasks waiting on one tier do not all retry in the same instant).
    """

    granted: bool
    retry_after: float
    in_use: int  # holders of the tier's slots right after this call, for metrics and logs


class Slots(Protocol):
    """What the call step needs of tier slots: ``TierSlots`` across processes (Redis), or
    ``ProcessSlots`` for one process (the in-process pipeline)."""

    def acquire(self, tier: str, holder: str, limit: int, lease_s: float) -> Acquired: ...

    def release(self, tier: str, holder: str) -> bool: ...


class ProcessSlots:
    """Tier slots inside one process, with the same contract as ``TierSlots`` (re-entrant per
    holder, leases that end by themselves). For the in-process pipeline, which has no broker."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, tier: str, holder: str, limit: int, lease_s: float) -> Acquired:
        _check_holder(holder)
        now = self._clock()
        with self._lock:
            held = self._held.setdefault(tier, {})
            for other, ends in list(held.items()):
                if ends <= now:
                    del held[other]
            if holder in held or len(held) < limit:
                held[holder] = now + lease_s
                return Acquired(granted=True, retry_after=0.0, in_use=len(held))
            return Acquired(
                granted=False, retry_after=max(min(held.values()) - now, 0.01), in_use=len(held)
            )

    def release(self, tier: str, holder: str) -> bool:
        with self._lock:
            return self._held.get(tier, {}).pop(holder, None) is not None


class TierSlots:
    """Per-tier slot counts shared by every worker that talks to one Redis.

    ``client`` should have socket timeouts set (``routeq.broker.broker_client`` does), otherwise
    an unreachable Redis can block ``acquire`` instead of raising ``SlotsUnavailableError``.
    redis-py also retries a failed connection itself (a few times, with backoff) before the
    error reaches this class, so raising can take seconds; pass the client a ``retry`` of its
    own to change that.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        *,
        min_retry_s: float = 0.5,
        unavailable_retry_s: float = 2.0,
    ) -> None:
        if min_retry_s <= 0 or unavailable_retry_s <= 0:
            raise ValueError("min_retry_s and unavailable_retry_s must be positive")
        self._client = client
        self._prefix = prefix
        self._min_retry_s = min_retry_s
        self._unavailable_retry_s = unavailable_retry_s
        # Registered once: redis-py then sends EVALSHA and loads the script only on NOSCRIPT
        # (a restarted or failed-over Redis), instead of shipping the source on every call.
        self._acquire = client.register_script(_ACQUIRE_LUA)

    def key(self, tier: str) -> str:
        """The Redis key of ``tier``'s sorted set."""
        if not tier:
            raise ValueError("tier must be a non-empty name")
        return self._prefix + tier

    def acquire(self, tier: str, holder: str, limit: int, lease_s: float) -> Acquired:
        """Take one of ``tier``'s ``limit`` slots for ``holder`` for ``lease_s`` seconds.

        Calling it again for a holder that already has a slot refreshes its lease (from now) and
        is always granted, even if ``limit`` has since been lowered. Raises
        ``SlotsUnavailableError`` when Redis is unreachable and ``ValueError`` on bad arguments.
        """
        _check_holder(holder)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if not (math.isfinite(lease_s) and lease_s > 0):
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s}")
        lease_ms = math.ceil(lease_s * 1000)
        key = self.key(tier)
        try:
            granted, wait_ms, in_use = self._acquire(
                keys=[key], args=[holder, limit, lease_ms], client=self._client
            )
        except _UNAVAILABLE as error:
            raise self._unavailable("acquire", tier, error) from error
        if granted:
            return Acquired(granted=True, retry_after=0.0, in_use=int(in_use))
        return Acquired(
            granted=False,
            retry_after=max(int(wait_ms) / 1000, self._min_retry_s),
            in_use=int(in_use),
        )

    def release(self, tier: str, holder: str) -> bool:
        """Give back ``holder``'s slot; True if it held one (False if its lease had ended).

        Raises ``SlotsUnavailableError`` if Redis is unreachable. A caller releasing in a
        ``finally`` may log that and carry on: the lease frees the slot anyway.
        """
        _check_holder(holder)
        key = self.key(tier)
        try:
            removed = self._client.zrem(key, holder)
        except _UNAVAILABLE as error:
            raise self._unavailable("release", tier, error) from error
        return bool(removed)

    def holders(self, tier: str) -> dict[str, float]:
        """Current holders of ``tier``'s slots and the seconds left on each lease.

        Read-only (expired entries are skipped, not removed), for tests, metrics and debugging.
        """
        key = self.key(tier)
        try:
            seconds, micros = self._client.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            entries = cast(
                "list[tuple[bytes | str, float]]",
                self._client.zrangebyscore(key, f"({now_ms}", "+inf", withscores=True),
            )
        except _UNAVAILABLE as error:
            raise self._unavailable("read", tier, error) from error
        return {
            (member.decode() if isinstance(member, bytes) else member): (score - now_ms) / 1000
            for member, score in entries
        }

    def _unavailable(self, action: str, tier: str, error: Exception) -> SlotsUnavailableError:
        return SlotsUnavailableError(
            f"cannot {action} a concurrency slot of tier {tier!r}: Redis is unavailable "
            f"({type(error).__name__}: {error}); retry in {self._unavailable_retry_s:g}s",
            retry_after=self._unavailable_retry_s,
        )


def _check_holder(holder: str) -> None:
    if not holder:
        raise ValueError("holder must be a non-empty id")
    if len(holder) > MAX_HOLDER_LEN:
        raise ValueError(
            f"holder ids are ids such as '<query_id>:<seq>' (at most {MAX_HOLDER_LEN} "
            f"characters), got {len(holder)} characters"
        )


# How far short of a wanted lease a held one may be and still count as covering it: the
# time since it was taken (a claim, a few statements) and the error of estimating its end
# here rather than on Redis's clock, both far below the lease margin every lease includes.
_SHORTFALL_S = 1.0


@dataclass(frozen=True)
class HeldSlot:
    """A tier slot a call step holds, and until when its lease runs (this process's
    monotonic clock, a little after Redis's own end of it)."""

    tier: str
    holder: str
    lease_end: float

    def covers(self, seconds: float) -> bool:
        """Whether the lease still runs for about ``seconds`` from now (``_SHORTFALL_S``): an
        attempt right after the slot was taken for it needs no renewal."""
        return self.lease_end - time.monotonic() >= seconds - _SHORTFALL_S

    def renewed(self, seconds: float) -> HeldSlot:
        return HeldSlot(self.tier, self.holder, time.monotonic() + seconds)
