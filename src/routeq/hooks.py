"""Hooks around the steps: the seam for budgets, shadow traffic and anything else that must see
(or gate) every call without editing the steps.

Three moments:

* ``before_call``: a call hop is about to call its tier's model. A hook may allow it, deny it
  (the query fails with the reason, or keeps an earlier answer it has), or move it to another
  tier (the hop ends without a call and a new call hop is created on that tier).
* ``after_verdict``: a judge step reached its verdict and the next step is decided.
* ``on_close``: a query reached its final state.

A hook is any object with some of these methods (subclass ``Hook`` for no-op defaults). Hooks
run in the worker, after the ledger has the facts (``after_verdict`` and ``on_close`` run after
the commit); an exception in a hook is logged and ignored for the observing moments, and denies
the call for ``before_call`` (a gate that cannot decide must not spend). Register a hook factory
from a plugin module (``[routing] plugins``) with ``register_hook``. Pure types; no I/O here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from routeq.records import QueryRole, QueryStatus

if TYPE_CHECKING:
    from routeq.config import Settings


@dataclass(frozen=True)
class CallContext:
    """A call about to be made. ``max_cost`` is the most it can cost (the prompt's tokens and
    the tier's whole output allowance at the tier's prices)."""

    query_id: uuid.UUID
    seq: int
    tier: str
    model: str
    role: QueryRole
    input_tokens: int
    max_cost: Decimal
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Deny:
    reason: str


@dataclass(frozen=True)
class MoveTo:
    tier: str
    reason: str


CallGate = Allow | Deny | MoveTo
ALLOW = Allow()


@dataclass(frozen=True)
class VerdictContext:
    """A judged answer: the tier that answered, the verdict and what happens next
    (``next_step`` is 'accept', 'escalate' or 'fail'; ``next_tier`` for an escalation)."""

    query_id: uuid.UUID
    tier: str
    passed: bool
    source: str
    score: float | None
    reason: str
    next_step: str
    next_tier: str | None
    role: QueryRole
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None


@dataclass(frozen=True)
class ClosedQuery:
    """A query that reached its final state."""

    query_id: uuid.UUID
    status: QueryStatus
    reason: str
    role: QueryRole
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None


class Hook:
    """No-op defaults: override what you need."""

    name = "hook"

    def before_call(self, call: CallContext) -> CallGate:
        return ALLOW

    def after_verdict(self, verdict: VerdictContext) -> None:
        return None

    def on_close(self, query: ClosedQuery) -> None:
        return None


HookFactory = Callable[["Settings"], Hook]
_FACTORIES: list[HookFactory] = []


def register_hook(factory: HookFactory) -> HookFactory:
    """Register a hook factory; every worker builds its hooks from the settings at start."""
    _FACTORIES.append(factory)
    return factory


def build_hooks(settings: Settings) -> tuple[Hook, ...]:
    return tuple(factory(settings) for factory in _FACTORIES)


def hook_name(hook: object) -> str:
    """A hook's ``name``, or its class name when it has none."""
    name = getattr(hook, "name", None)
    return name if isinstance(name, str) else type(hook).__name__


def gate(hooks: Sequence[object], call: CallContext) -> CallGate:
    """The first hook that does not allow the call decides; a hook that raises denies it, and
    one without ``before_call`` has no say."""
    for hook in hooks:
        before_call = getattr(hook, "before_call", None)
        if before_call is None:
            continue
        try:
            decision = before_call(call)
        except Exception as error:
            return Deny(f"hook {hook_name(hook)!r} failed, call denied: {type(error).__name__}")
        if not isinstance(decision, Allow | Deny | MoveTo):
            return Deny(f"hook {hook_name(hook)!r} returned {decision!r}, not a call gate")
        if not isinstance(decision, Allow):
            return decision
    return ALLOW


def notify(hooks: Sequence[object], moment: str, context: object) -> list[str]:
    """Tell every hook that has the method ``moment`` (``after_verdict`` or ``on_close``);
    returns the failures (``name: error``) to log: an observing hook cannot stop the pipeline."""
    failures: list[str] = []
    for hook in hooks:
        method = getattr(hook, moment, None)
        if method is None:
            continue
        try:
            method(context)
        except Exception as error:
            failures.append(f"{hook_name(hook)}: {type(error).__name__}: {error}")
    return failures
