"""What a worker process needs, built once per process after the fork.

Prefork children must not share the parent's database connections or HTTP pools, so nothing here
is created at import time; ``reset_runtime`` runs on ``worker_process_init``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from celery import Celery

from routeq.config import ModelEndpoint, Settings
from routeq.ledger import Ledger, make_engine
from routeq.policies import Policy, build_policy
from routeq.providers import Provider, provider_for
from routeq.worker.publisher import Publisher


@dataclass
class Runtime:
    settings: Settings
    ledger: Ledger
    publisher: Publisher
    policy: Policy
    http: httpx.Client
    _providers: dict[str, Provider] = field(default_factory=dict)

    def provider(self, endpoint: ModelEndpoint) -> Provider:
        key = f"{endpoint.provider}|{endpoint.base_url}|{endpoint.model}"
        if key not in self._providers:
            self._providers[key] = provider_for(endpoint, self.http)
        return self._providers[key]


_factory: Callable[[], Runtime] | None = None
_runtime: Runtime | None = None
_runtime_pid: int | None = None


def configure_runtime(factory: Callable[[], Runtime]) -> None:
    """Tell worker processes how to build their runtime (done by ``routeq.worker.main``)."""
    global _factory
    _factory = factory
    reset_runtime()


def build_runtime(settings: Settings, database_url: str, app: Celery) -> Runtime:
    return Runtime(
        settings=settings,
        # One connection per process: a task uses one at a time, and a fleet of workers
        # must fit the database's max_connections.
        ledger=Ledger(make_engine(database_url, pool_size=1)),
        publisher=Publisher(app, settings),
        policy=build_policy(settings),
        http=httpx.Client(limits=httpx.Limits(max_connections=20), follow_redirects=False),
    )


def get_runtime() -> Runtime:
    """The process's runtime; rebuilt when the pid changed (a forked child)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        if _factory is None:
            raise RuntimeError("worker runtime not configured: start workers with `routeq worker`")
        _runtime, _runtime_pid = _factory(), os.getpid()
    return _runtime


def reset_runtime() -> None:
    """Drop what a forked child inherited, without closing the parent's sockets under it."""
    global _runtime, _runtime_pid
    if _runtime is not None and _runtime_pid != os.getpid():
        _runtime.ledger.engine.dispose(close=False)
    _runtime, _runtime_pid = None, None
