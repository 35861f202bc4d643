"""What a worker process needs, built once per process after the fork.

Prefork children must not share the parent's database connections or HTTP pools, so nothing here
is created at import time; ``reset_runtime`` runs on ``worker_process_init``.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import httpx
import redis

from routeq import secrets
from routeq.broker import broker_client
from routeq.config import ModelEndpoint, Settings
from routeq.errors import ConfigError
from routeq.hooks import Hook, build_hooks
from routeq.judges.answer_features import AnswerVerifier
from routeq.ledger.port import WorkerLedger
from routeq.policies import EscalationPolicy, Policy, Router, build_escalation, build_router
from routeq.policies.escalation import NextTier
from routeq.providers import Provider, provider_for
from routeq.records import ClaimedHop, NextHop, RequestDone
from routeq.worker.guard import ProviderGuard, RedisGuard
from routeq.worker.slots import HeldSlot, Slots, TierSlots

if TYPE_CHECKING:
    from celery import Celery


class HopPublisher(Protocol):
    """Where the steps' next hops go: Celery queues in a worker, a local queue in-process."""

    def publish(
        self, hop: NextHop, *, countdown: float | None = None, republished: bool = False
    ) -> None:
        """``republished``: the hop's message was lost and this is its replacement."""
        ...

    def publish_routes(self, query_ids: Sequence[uuid.UUID], *, republished: bool = False) -> None:
        """The route hops of many queries."""
        ...


@dataclass
class Runtime:
    """Everything a step needs. Built per worker process (``build_runtime``) or for the
    in-process pipeline (``routeq.pipeline``), which swaps the publisher and the slots."""

    settings: Settings
    ledger: WorkerLedger
    publisher: HopPublisher
    router: Router
    http: httpx.Client
    # A fresh claim's lease: the step's own work plus one attempt of the slowest model. A
    # constant of the settings, computed once per process rather than at every claim.
    claim_lease_s: float
    broker_url: str | None = None
    # The worker node running the current task (Celery's hostname): recorded on the hops it
    # claims, so the local stack can hand back the hops of workers it knows it killed.
    node: str | None = None
    rng: random.Random = field(default_factory=random.Random)
    # The tier slot (tier, holder) the current call step holds, renewed by each attempt.
    call_slot: HeldSlot | None = None
    # The hop the current step claimed, if any: released (fenced) when the step fails.
    claimed: ClaimedHop | None = None
    # Whether the current delivery may hold its claim open until its next write: a message's
    # first delivery only (``ledger.held``).
    hold_claim: bool = False
    # What is left of the current delivery's time to wait for rate-limit capacity.
    inline_wait_left_s: float = 0.0
    # The current step's successful provider requests, written with its hop's finish (one
    # transaction), or by ``steps.record_unrecorded`` when the step ends another way.
    unrecorded: list[RequestDone] = field(default_factory=list)
    # Redis work the next hop need not wait for (a call's tier slot given back): done once
    # the step's hops are published (``steps.after_publish``), however the delivery ended.
    after_publish: list[Callable[[], None]] = field(default_factory=list)
    escalation: EscalationPolicy = field(default_factory=NextTier)
    hooks: tuple[Hook, ...] = ()
    # The trained verifier of cheap answers ([judge.verifier]), if configured.
    verifier: AnswerVerifier | None = None
    _providers: dict[str, Provider] = field(default_factory=dict)
    _broker: redis.Redis | None = None
    _slots: Slots | None = None
    _guard: ProviderGuard | None = None

    @property
    def guard(self) -> ProviderGuard:
        """Rate limits, Retry-After and circuit breakers shared by every worker (Redis)."""
        if self._guard is None:
            self._guard = RedisGuard(self.broker, self.settings.protection)
        return self._guard

    @property
    def slots(self) -> Slots:
        """Tier concurrency slots shared by every worker, kept in the broker's Redis."""
        if self._slots is None:
            self._slots = TierSlots(self.broker)
        return self._slots

    @property
    def broker(self) -> redis.Redis:
        """A redis-py client on the broker, for the reconciler's look at the queues."""
        if self._broker is None:
            if self.broker_url is None:
                raise RuntimeError("this runtime has no broker URL")
            self._broker = broker_client(self.broker_url)
        return self._broker

    def provider(self, endpoint: ModelEndpoint) -> Provider:
        key = f"{endpoint.provider}|{endpoint.base_url}|{endpoint.model}"
        if key not in self._providers:
            self._providers[key] = provider_for(endpoint, self.http)
        return self._providers[key]


_factory: Callable[[], Runtime] | None = None
# One runtime per process and thread: a step's delivery state (the hop it claimed, its slot,
# its unrecorded requests) is its own, and a thread pool's tasks each get a connection.
_local = threading.local()


def configure_runtime(factory: Callable[[], Runtime]) -> None:
    """Tell worker processes how to build their runtime (done by ``routeq.worker.main``)."""
    global _factory
    _factory = factory
    reset_runtime()


def build_runtime(
    settings: Settings,
    database_url: str,
    app: Celery,
    *,
    policy: Policy | None = None,
    verifier: AnswerVerifier | None = None,
) -> Runtime:
    """A worker process's runtime. ``policy``: the routing policy the worker built when it
    started (``policy_at_start``), so a pool child neither loads a trained model again nor
    finds out only at its first route step that it cannot."""
    from routeq.ledger import Ledger, make_engine
    from routeq.queue.publisher import Publisher

    secrets.register_settings(settings)
    return runtime_for(
        settings,
        # One connection per runtime (a process's, or a pool thread's): a task uses one at a
        # time, and a fleet of workers must fit the database's max_connections. No pre-ping
        # at every checkout: a connection is pinged only after a second unused (a model
        # call's wait), so a step's back-to-back statements cost one round trip each
        # (docs/performance.md).
        Ledger(make_engine(database_url, pool_size=1, pre_ping=False, ping_after_idle_s=1.0)),
        Publisher(app, settings),
        new_http_client(),
        policy=policy,
        verifier=verifier,
        broker_url=app.conf.broker_url,
    )


def verifier_at_start(settings: Settings) -> AnswerVerifier | None:
    """The configured ``[judge.verifier]`` loaded, or None; ``ConfigError`` when its artifact
    is missing or unusable. Built at worker start like the policy, for the same reason."""
    if settings.judge.verifier is None:
        return None
    try:
        from routeq.learned.cascade import verifier_at_start as load
    except ImportError as error:
        raise ConfigError(
            f"judge.verifier needs routeq's learn extra ({error.name} is missing): "
            "pip install 'routeq[learn]'"
        ) from None
    return load(settings)


def policy_at_start(settings: Settings) -> Policy:
    """The configured routing policy, built (and checked as the router checks it) when a worker
    starts, before it consumes anything: a missing or corrupt trained artifact, or a policy the
    ladder cannot use, raises ``ConfigError`` naming the problem here rather than failing the
    first route step of every query. Policies are pure once built, so a prefork worker builds
    it once in its main process and its pool children share it."""
    return build_router(settings).policy


def runtime_for(
    settings: Settings,
    ledger: WorkerLedger,
    publisher: HopPublisher,
    http: httpx.Client,
    *,
    policy: Policy | None = None,
    verifier: AnswerVerifier | None = None,
    hooks: Sequence[Hook] | None = None,
    broker_url: str | None = None,
    node: str | None = None,
    slots: Slots | None = None,
    guard: ProviderGuard | None = None,
) -> Runtime:
    """A runtime with what the settings configure: the router (``policy`` overrides the
    configured policy), the escalation policy, the hooks (``None``: the registered ones) and
    the claim lease. Workers and the in-process pipeline both build theirs here."""
    return Runtime(
        settings=settings,
        ledger=ledger,
        publisher=publisher,
        router=build_router(settings, policy),
        escalation=build_escalation(settings),
        hooks=build_hooks(settings) if hooks is None else tuple(hooks),
        verifier=verifier if verifier is not None else verifier_at_start(settings),
        http=http,
        claim_lease_s=settings.time_limits.claim_lease_s,
        broker_url=broker_url,
        node=node,
        _slots=slots,
        _guard=guard,
    )


def new_http_client() -> httpx.Client:
    return httpx.Client(limits=httpx.Limits(max_connections=20), follow_redirects=False)


def get_runtime() -> Runtime:
    """This thread's runtime; rebuilt when the pid changed (a forked child)."""
    if getattr(_local, "runtime", None) is None or _local.pid != os.getpid():
        if _factory is None:
            raise RuntimeError("worker runtime not configured: start workers with `routeq worker`")
        _local.runtime, _local.pid = _factory(), os.getpid()
    runtime: Runtime = _local.runtime
    return runtime


def reset_runtime() -> None:
    """Drop what a forked child inherited, without closing the parent's sockets under it."""
    runtime: Runtime | None = getattr(_local, "runtime", None)
    if runtime is not None and _local.pid != os.getpid():
        runtime.ledger.dispose()
    _local.runtime, _local.pid = None, None
