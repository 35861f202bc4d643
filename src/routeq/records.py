"""The ledger's vocabulary as plain types: states, roles, and the records steps read and write.

Pure (no SQLAlchemy): the steps, hooks and policies speak these types, and the repository
(``ledger.repository``) translates them to and from rows. Enum values are what the columns hold.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class QueryStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class QueryRole(StrEnum):
    """What a query is for. ``answer``: a user's query; ``document``: a batch document (its
    answer is the summary); ``part`` and ``combine``: the pieces of a split document; ``shadow``:
    a background re-run of an accepted answer on another tier, to measure quality; ``rerun``: a
    re-run bought by feedback. Shadows and re-runs point at their original query."""

    ANSWER = "answer"
    DOCUMENT = "document"
    PART = "part"
    COMBINE = "combine"
    SHADOW = "shadow"
    RERUN = "rerun"


class HopKind(StrEnum):
    ROUTE = "route"
    CALL = "call"
    JUDGE = "judge"
    COMBINE = "combine"  # a split document: combine its parts' summaries once they are all done


class HopStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RequestOutcome(StrEnum):
    PENDING = "pending"  # on the ledger before it is sent: a worker may die mid-call
    OK = "ok"
    ERROR = "error"
    UNKNOWN = "unknown"  # its worker died while it was in flight: it may have been paid
    SUPERSEDED = "superseded"


class ClaimState(StrEnum):
    """What claiming a hop found (see ``Claim``)."""

    CLAIMED = "claimed"  # work on the hop
    FINISHED = "finished"  # a duplicate delivery: the hop is done or failed
    BUSY = "busy"  # another live delivery owns it
    EXHAUSTED = "exhausted"  # past the delivery cap: the hop has just been marked failed
    MISSING = "missing"


QUERY_ROLES = tuple(role.value for role in QueryRole)
LIVE_HOP_STATUSES = (HopStatus.QUEUED.value, HopStatus.RUNNING.value)
FINAL_QUERY_STATUSES = (QueryStatus.DONE.value, QueryStatus.FAILED.value)
LIVE_QUERY_STATUSES = (QueryStatus.QUEUED.value, QueryStatus.RUNNING.value)

ChatMessage = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


@dataclass(frozen=True)
class NewQuery:
    text: str
    input_tokens: int
    metadata: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    idempotency_key: str | None = None
    task: dict[str, Any] | None = None  # a summarization task (routeq.summary_spec.SummaryTask)
    parent_id: uuid.UUID | None = None  # the split document this query is a piece of
    cache_key: str | None = None  # finished queries with the same key may be reused
    batch_document_id: int | None = None  # the batch document this query works for
    role: QueryRole = QueryRole.ANSWER
    messages: list[ChatMessage] | None = None  # a chat request's turns; ``text`` is the last
    params: dict[str, Any] | None = None  # generation parameters: temperature, max_tokens
    shadow_of: uuid.UUID | None = None
    rerun_of: uuid.UUID | None = None
    api_key_id: str | None = None  # the id of the API key it came with (never the key)
    privacy: str = "full"  # what of its texts is kept: full, redact or none (routeq.privacy)


@dataclass(frozen=True)
class Submitted:
    query_id: uuid.UUID
    created: bool  # False when the idempotency key matched an existing query
    route_queued: bool = True  # the route hop still waits: (re)publishing it is safe and needed


@dataclass(frozen=True)
class NextHop:
    """A hop to create after the current one, and to publish once the transaction commits."""

    query_id: uuid.UUID
    seq: int
    kind: HopKind
    tier: str | None = None
    model: str | None = None
    reason: str | None = None
    background: bool = False  # a shadow's hop: published at the shadow priority, after the rest


@dataclass(frozen=True)
class LiveHop:
    """A queued or running hop as the reconciler sees it."""

    hop: NextHop
    status: HopStatus
    attempts: int
    lease_expired: bool


@dataclass(frozen=True)
class Finished:
    """What closing a hop (or a query) did: ``owned`` is False when a newer delivery owned the
    hop (nothing was written); ``publish`` lists the hops to publish now that the transaction
    committed; ``closed`` says whether it gave the query its final state (once per query: the
    moment ``on_close`` hooks are told)."""

    owned: bool
    publish: list[NextHop] = field(default_factory=list)
    closed: bool = False  # this transaction gave the query its final state

    def __bool__(self) -> bool:
        return self.owned


@dataclass(frozen=True)
class ChildQuery:
    """A piece of a split document, as the combine step needs it."""

    id: uuid.UUID
    status: QueryStatus
    role: QueryRole
    task: dict[str, Any]
    answer: str | None
    reason: str | None


@dataclass(frozen=True)
class ClaimedHop:
    id: int
    query_id: uuid.UUID
    seq: int
    kind: HopKind
    tier: str | None
    model: str | None
    delivery: int  # the fencing token: this claim's attempt number


@dataclass(frozen=True)
class Claim:
    """The result of claiming a hop; ``retry_in`` (seconds) goes with ``BUSY``."""

    state: ClaimState
    hop: ClaimedHop | None = None
    retry_in: float = 0.0
    # With CLAIMED: what the step reads, fetched by the claim itself (one round trip).
    query: QueryInput | None = None
    answer: CallOutput | None = None  # a judge hop's: the answer it judges
    unreadable: str | None = None  # claimed, but the query's input could not be decoded


@dataclass(frozen=True)
class QueryInput:
    """What the steps read of a query."""

    id: uuid.UUID
    text: str
    input_tokens: int
    metadata: dict[str, Any]
    user: str | None
    status: QueryStatus
    task: dict[str, Any] | None = None
    parent_id: uuid.UUID | None = None
    batch_document_id: int | None = None
    role: QueryRole = QueryRole.ANSWER
    messages: list[ChatMessage] | None = None
    params: dict[str, Any] | None = None
    shadow_of: uuid.UUID | None = None
    rerun_of: uuid.UUID | None = None
    # a re-run's or a shadow's: the tier that gave the answer it repeats
    original_tier: str | None = None
    api_key_id: str | None = None
    privacy: str = "full"


@dataclass(frozen=True)
class CallOutput:
    seq: int
    tier: str | None
    model: str | None
    output: str | None
    finish_reason: str | None


@dataclass(frozen=True)
class Usage:
    """A model call's answer as recorded on its hop (its cost is added per provider request)."""

    output: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    latency_ms: int


@dataclass(frozen=True)
class RequestDone:
    """A provider request's completion: its outcome, tokens and cost, to be written on the
    ledger. A successful attempt's is written with the hop's finish, in the same transaction
    (``StepLedger.finish_hop``); a failed one's at once (``finish_request``)."""

    hop: ClaimedHop
    request_id: int
    outcome: str
    latency_ms: int
    cost: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_estimated: bool = False
    http_status: int | None = None
    error: str | None = None
    settle_budgets: bool = False


@dataclass(frozen=True)
class HopResult:
    """What a step writes on the hop it closes. Every field is optional; ``None`` leaves the
    column as it is. A route hop carries the decision (tier, policy, version, score); a call hop
    its ``usage``; a judge hop its verdict (``passed``, ``judge_score``) and the judge call's
    usage; ``details`` holds what has no column (a rule's name, a policy's explanation)."""

    reason: str | None = None
    error: str | None = None
    tier: str | None = None
    usage: Usage | None = None
    passed: bool | None = None
    judge_score: float | None = None
    policy: str | None = None
    policy_version: str | None = None
    policy_score: float | None = None
    details: dict[str, Any] | None = None
    model: str | None = None  # a call answered by a fallback endpoint: the model that answered

    def columns(self) -> dict[str, Any]:
        """The hop columns this result sets."""
        values: dict[str, Any] = {
            "reason": self.reason,
            "error": self.error,
            "tier": self.tier,
            "model": self.model,
            "passed": self.passed,
            "judge_score": self.judge_score,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "policy_score": self.policy_score,
            "details": self.details,
        }
        if self.usage is not None:
            values.update(
                output=self.usage.output,
                finish_reason=self.usage.finish_reason,
                input_tokens=self.usage.input_tokens,
                output_tokens=self.usage.output_tokens,
                tokens_estimated=self.usage.tokens_estimated,
                latency_ms=self.usage.latency_ms,
            )
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class HopView:
    seq: int
    kind: HopKind
    tier: str | None
    model: str | None
    status: HopStatus
    attempts: int
    input_tokens: int | None
    output_tokens: int | None
    tokens_estimated: bool
    cost: Decimal
    latency_ms: int | None
    judge_score: Decimal | None
    passed: bool | None
    reason: str | None
    error: str | None
    policy: str | None = None
    policy_version: str | None = None
    policy_score: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The hop's score: a judge's on judge hops, the policy's on route hops."""
        if self.judge_score is not None:
            return float(self.judge_score)
        return self.policy_score


@dataclass(frozen=True)
class QueryView:
    id: uuid.UUID
    status: QueryStatus
    answer: str | None
    final_tier: str | None
    final_model: str | None
    final_reason: str | None
    total_cost: Decimal
    created_at: datetime
    finished_at: datetime | None
    hops: list[HopView]
    role: QueryRole = QueryRole.ANSWER

    @property
    def finished(self) -> bool:
        return self.status in FINAL_QUERY_STATUSES


@dataclass(frozen=True)
class QueryOutcome:
    """How a step ends a query: done with the answer of hop ``answer_seq`` (or, for a split
    document, of the query ``from_query`` that combined its parts), or failed."""

    status: QueryStatus
    reason: str
    answer_seq: int | None = None
    from_query: uuid.UUID | None = None
