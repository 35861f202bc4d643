"""Provider protection shared by every worker: rate limits, ``Retry-After`` and circuit breakers.

Each endpoint (a provider's base URL and model) has one small state in Redis, so that every
process on every machine holds back together:

* **Rate limits** (``requests_per_minute``, ``tokens_per_minute``) are GCRA meters (the
  "virtual scheduling" form of a leaky bucket): the state is the time by which the traffic
  let through so far has been paid off at the rate; each request pushes it on by its cost
  (one request's share of a minute, or its prompt plus output allowance in tokens), and may
  go while the meter is no further ahead of now than its own cost. Requests are paced evenly:
  in any window of ``W`` seconds the provider sees at most ``W`` seconds' worth of the rate,
  plus two requests.
* **Retry-After**: a 429 (or 503) with ``Retry-After`` blocks the endpoint for every worker
  until then, not only for the delivery that was told.
* **Circuit breaker**: ``breaker_failures`` failed attempts in a row (connection errors,
  timeouts, 5xx; not 429s, which the limiter handles, and not 4xx, which are the request's
  fault) open the breaker for ``breaker_open_s``. Then it is half-open: one delivery at a time
  may probe (its probe is leased, so a probe that dies frees the endpoint); a success closes the
  breaker, a failure opens it again.

All of it runs in one Lua script per operation, on Redis's clock, so concurrent workers cannot
both take the last unit of capacity and worker clocks do not matter (a look before a claim may
be answered from the guard's last admission instead: ``RedisGuard.admit``). Keys hold a hash
of the endpoint's identity (never a URL, which may carry credentials) and expire when idle.

``ProcessGuard`` keeps the same states in memory for the in-process pipeline; both implement
the rules of ``EndpointState``, whose methods are the specification the Lua script follows.
``OpenGuard`` holds nothing back (a replay calls no provider).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from routeq.config import ModelEndpoint, ProtectionConfig

DEFAULT_PREFIX = "routeq:guard:"
# A 429 without Retry-After still blocks the endpoint this long (milliseconds).
DEFAULT_RETRY_AFTER_MS = 1000
# For an endpoint without rate limits: for how long after a guard last had a call admitted
# the look before a claim is answered without asking Redis (``RedisGuard.admit``), seconds.
PEEK_MEMO_S = 1.0
# An endpoint's state is dropped after an hour without calls.
_IDLE_EXPIRY_MS = 3_600_000

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)

Why = Literal["ok", "rate", "retry-after", "breaker", "unreachable"]
# "unsent": the attempt that took capacity was not sent after all (a budget refused it).
Outcome = Literal["ok", "failed", "limited", "unsent"]


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether an attempt may go to the endpoint now; if not, why and for how long."""

    granted: bool
    wait_s: float = 0.0
    why: Why = "ok"


@dataclass(frozen=True, slots=True)
class Limits:
    """What the guard needs of an endpoint: its limits and the breaker's settings."""

    requests_per_minute: int | None
    tokens_per_minute: int | None
    breaker_failures: int
    breaker_open_ms: int
    probe_lease_ms: int

    @classmethod
    def of(cls, endpoint: ModelEndpoint, protection: ProtectionConfig) -> Limits:
        return cls(
            endpoint.requests_per_minute,
            endpoint.tokens_per_minute,
            protection.breaker_failures,
            round(protection.breaker_open_s * 1000),
            # The probe is one attempt: its timeout and a margin.
            round((endpoint.timeout_s + 5.0) * 1000),
        )


def endpoint_key(endpoint: ModelEndpoint) -> str:
    """A short, stable id of the endpoint: a hash, because a base URL may hold credentials."""
    identity = f"{endpoint.provider}|{endpoint.base_url}|{endpoint.model}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


@dataclass
class EndpointState:
    """One endpoint's state, in milliseconds; the rules every guard applies."""

    request_tat: float = 0.0
    token_tat: float = 0.0
    blocked_until: float = 0.0
    failures: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0

    def admit(self, now: float, limits: Limits, tokens: int, *, take: bool) -> Admission:
        if self.blocked_until > now:
            return Admission(False, (self.blocked_until - now) / 1000, "retry-after")
        probing = False
        if self.open_until > 0:
            if self.open_until > now:
                return Admission(False, (self.open_until - now) / 1000, "breaker")
            if self.probe_until > now:  # half-open, and another delivery is probing
                return Admission(False, (self.probe_until - now) / 1000, "breaker")
            probing = True
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        r_cost = 60_000 / rpm if rpm else 0.0
        t_cost = 60_000 / tpm * tokens if tpm else 0.0
        # A meter may run ahead of now by this request's own cost, no more.
        wait = max(
            self.request_tat - now - r_cost if rpm else 0.0,
            self.token_tat - now - t_cost if tpm else 0.0,
            0.0,
        )
        if wait > 0:
            return Admission(False, wait / 1000, "rate")
        if take:
            if rpm:
                self.request_tat = max(self.request_tat, now) + r_cost
            if tpm:
                self.token_tat = max(self.token_tat, now) + t_cost
            if probing:
                self.probe_until = now + limits.probe_lease_ms
        return Admission(True)

    def report(self, now: float, limits: Limits, outcome: Outcome, retry_after_ms: int) -> None:
        if outcome == "ok":
            self.failures, self.open_until, self.probe_until = 0, 0.0, 0.0
        elif outcome == "unsent":
            self.probe_until = 0.0
        elif outcome == "limited":
            self.blocked_until = max(self.blocked_until, now + retry_after_ms)
        else:
            self.failures += 1
            if self.open_until > 0 or self.failures >= limits.breaker_failures:
                self.open_until, self.probe_until = now + limits.breaker_open_ms, 0.0


class ProviderGuard(Protocol):
    """What the steps ask before an attempt and tell after it."""

    def admit(self, endpoint: ModelEndpoint, tokens: int, *, take: bool = True) -> Admission: ...

    def report(
        self, endpoint: ModelEndpoint, outcome: Outcome, retry_after_s: float | None = None
    ) -> None: ...


class ProcessGuard:
    """The guard inside one process (the in-process pipeline), with ``EndpointState``'s rules."""

    def __init__(
        self, protection: ProtectionConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._protection = protection
        self._clock = clock
        self._states: dict[str, EndpointState] = {}
        self._lock = threading.Lock()

    def admit(self, endpoint: ModelEndpoint, tokens: int, *, take: bool = True) -> Admission:
        limits = Limits.of(endpoint, self._protection)
        with self._lock:
            state = self._states.setdefault(endpoint_key(endpoint), EndpointState())
            return state.admit(self._clock() * 1000, limits, tokens, take=take)

    def report(
        self, endpoint: ModelEndpoint, outcome: Outcome, retry_after_s: float | None = None
    ) -> None:
        limits = Limits.of(endpoint, self._protection)
        with self._lock:
            state = self._states.setdefault(endpoint_key(endpoint), EndpointState())
            state.report(self._clock() * 1000, limits, outcome, _retry_after_ms(retry_after_s))


class OpenGuard:
    """A guard that holds nothing back: for a replay, whose calls are answered from the
    ledger and reach no provider."""

    def admit(self, endpoint: ModelEndpoint, tokens: int, *, take: bool = True) -> Admission:
        return Admission(True)

    def report(
        self, endpoint: ModelEndpoint, outcome: Outcome, retry_after_s: float | None = None
    ) -> None:
        return None


def _retry_after_ms(retry_after_s: float | None) -> int:
    return DEFAULT_RETRY_AFTER_MS if retry_after_s is None else round(retry_after_s * 1000)


# KEYS[1] = the endpoint's hash. ARGV = rpm, tpm (0: none), tokens, take (1/0), probe lease ms.
# Returns {granted, wait ms, why}. Mirrors EndpointState.admit.
_ADMIT_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, take, probe_ms = tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s = redis.call('HMGET', key, 'rtat', 'ttat', 'blocked', 'open', 'probe')
local rtat, ttat = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local blocked, open, probe = tonumber(s[3]) or 0, tonumber(s[4]) or 0, tonumber(s[5]) or 0
if blocked > now then return {0, tostring(blocked - now), 'retry-after'} end
local probing = false
if open > 0 then
  if open > now then return {0, tostring(open - now), 'breaker'} end
  if probe > now then return {0, tostring(probe - now), 'breaker'} end
  probing = true
end
local rc, tc = 0, 0
if rpm > 0 then rc = 60000 / rpm end
if tpm > 0 then tc = 60000 / tpm * tokens end
local wait = 0
if rpm > 0 then wait = math.max(wait, rtat - now - rc) end
if tpm > 0 then wait = math.max(wait, ttat - now - tc) end
if wait > 0 then return {0, tostring(wait), 'rate'} end
if take then
  if rpm > 0 then redis.call('HSET', key, 'rtat', tostring(math.max(rtat, now) + rc)) end
  if tpm > 0 then redis.call('HSET', key, 'ttat', tostring(math.max(ttat, now) + tc)) end
  if probing then redis.call('HSET', key, 'probe', tostring(now + probe_ms)) end
  redis.call('PEXPIRE', key, IDLE_MS)
end
return {1, '0', 'ok'}
""".replace("IDLE_MS", str(_IDLE_EXPIRY_MS))

# KEYS[1] = the endpoint's hash. ARGV = outcome, retry-after ms, breaker failures, open ms.
# Mirrors EndpointState.report.
_REPORT_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local outcome, retry_ms = ARGV[1], tonumber(ARGV[2])
local threshold, open_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if outcome == 'ok' then
  redis.call('HSET', key, 'fails', '0', 'open', '0', 'probe', '0')
elseif outcome == 'unsent' then
  redis.call('HSET', key, 'probe', '0')
elseif outcome == 'limited' then
  local blocked = tonumber(redis.call('HGET', key, 'blocked')) or 0
  redis.call('HSET', key, 'blocked', tostring(math.max(blocked, now + retry_ms)))
else
  local fails = redis.call('HINCRBY', key, 'fails', 1)
  local open = tonumber(redis.call('HGET', key, 'open')) or 0
  if open > 0 or fails >= threshold then
    redis.call('HSET', key, 'open', tostring(now + open_ms), 'probe', '0')
  end
end
redis.call('PEXPIRE', key, IDLE_MS)
return 1
""".replace("IDLE_MS", str(_IDLE_EXPIRY_MS))


class RedisGuard:
    """The guard shared by every worker, in the broker's Redis.

    When Redis cannot be reached, ``admit`` says ``unreachable`` (wait and retry, like the tier
    slots: letting calls through unlimited exactly when the system is degraded is how bills
    and 429 storms happen) and ``report`` drops the report (the next one corrects the state)."""

    def __init__(
        self, client: redis.Redis, protection: ProtectionConfig, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._client = client
        self._protection = protection
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT_LUA)
        self._report = client.register_script(_REPORT_LUA)
        # Endpoints without rate limits, and when this guard last had a call admitted to each
        # (monotonic), for the look before a claim (``admit(take=False)``). A guard is one
        # runtime's: a worker process's, or a thread's under ``--pool threads``.
        self._admitted: dict[str, float] = {}

    def key(self, endpoint: ModelEndpoint) -> str:
        return self._prefix + endpoint_key(endpoint)

    def admit(self, endpoint: ModelEndpoint, tokens: int, *, take: bool = True) -> Admission:
        """``take=False`` only looks (before a claim, so that waiting uses no delivery). For an
        endpoint with no rate limits whose last admission through this guard was granted
        within ``PEEK_MEMO_S``, with no failure reported since, the look is answered here
        without a round trip: only a ``Retry-After`` or a breaker another worker met in that
        moment could say otherwise. The admission after the claim still asks Redis; if it
        must wait, the step waits inline (``protection.max_inline_wait_s``) or hands the hop
        back uncounted, as for any wait found after a claim, and the next look asks Redis."""
        limits = Limits.of(endpoint, self._protection)
        key = self.key(endpoint)
        unlimited = limits.requests_per_minute is None and limits.tokens_per_minute is None
        if not take and unlimited:
            since = self._admitted.get(key)
            if since is not None and time.monotonic() - since < PEEK_MEMO_S:
                return Admission(True)
        args = [
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            tokens,
            1 if take else 0,
            limits.probe_lease_ms,
        ]
        try:
            granted, wait_ms, why = cast(list[object], self._admit([key], args))
        except _UNAVAILABLE:
            return Admission(False, 1.0, "unreachable")
        if take and unlimited:
            if granted:
                self._admitted[key] = time.monotonic()
            else:
                self._admitted.pop(key, None)
        text = why.decode() if isinstance(why, bytes) else str(why)
        return Admission(bool(granted), float(cast(bytes, wait_ms)) / 1000, cast(Why, text))

    def report(
        self, endpoint: ModelEndpoint, outcome: Outcome, retry_after_s: float | None = None
    ) -> None:
        key = self.key(endpoint)
        if outcome != "ok":
            self._admitted.pop(key, None)
        limits = Limits.of(endpoint, self._protection)
        args = [
            outcome,
            _retry_after_ms(retry_after_s),
            limits.breaker_failures,
            limits.breaker_open_ms,
        ]
        with suppress(*_UNAVAILABLE):
            self._report([key], args)


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """What the guard holds on one endpoint, for the metrics exporter."""

    breaker_open: bool  # open or half-open: calls are kept off it, or one probes it
    failures: int  # failed attempts in a row
    blocked_s: float  # left of a Retry-After block


def endpoint_health(
    client: redis.Redis, endpoints: list[ModelEndpoint], prefix: str = DEFAULT_PREFIX
) -> list[EndpointHealth]:
    """Each endpoint's breaker and Retry-After block, in one round trip, on Redis's clock."""
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for endpoint in endpoints:
        pipe.hmget(prefix + endpoint_key(endpoint), "open", "fails", "blocked")
    replies = pipe.execute()
    seconds, micros = replies[0]
    now_ms = seconds * 1000 + micros / 1000
    health = []
    for opened, fails, blocked in replies[1:]:
        open_until = float(opened or 0)
        health.append(
            EndpointHealth(
                breaker_open=open_until > 0,
                failures=int(fails or 0),
                blocked_s=max(0.0, (float(blocked or 0) - now_ms) / 1000),
            )
        )
    return health
