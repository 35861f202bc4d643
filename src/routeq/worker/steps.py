"""A query's journey, one step per function: claim → act → record → say what to publish.

Each step is called by a thin Celery task (``worker.tasks``) and returns a ``StepResult``; the task
publishes the returned hops only after the ledger transaction committed. Reading this file top to
bottom is reading the pipeline: route, call, judge, and for documents too long for one call,
combine (map-reduce: the route step splits the document into child queries, one per part, and the
combine step joins their summaries once all of them are finished).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from routeq.budgets import Charge, charges, needs_batch, on_exceed, reservation
from routeq.config import ModelEndpoint, TierConfig
from routeq.errors import (
    BudgetExceededError,
    DeliverySupersededError,
    EndpointUnavailableError,
    ProviderError,
    UnreadableQueryError,
)
from routeq.hooks import Allow, CallContext, ClosedQuery, Deny, VerdictContext, gate, notify
from routeq.judges import (
    Accept,
    Escalate,
    Fail,
    JudgeBudget,
    JudgeError,
    NextStep,
    Verdict,
    after_call_failure,
    after_verdict,
    fit_judge_messages,
    heuristic_failure,
    judge_error_detail,
    parse_judge_reply,
    summary_failure,
    with_fit_notes,
)
from routeq.judges.pairwise import pairwise_messages, parse_pairwise_reply, shadow_first
from routeq.policies import (
    Decision,
    InvalidDecisionError,
    QueryView,
    default_tier,
    fit_to_context,
    fits,
    rerun_tier,
    shadow_sampled,
    shadow_tier,
)
from routeq.pricing import call_cost
from routeq.privacy import Redactor, redact, redactor
from routeq.providers import Attempt, ChatRequest, ChatResponse, complete_with_retries
from routeq.records import (
    FINAL_QUERY_STATUSES,
    CallOutput,
    ChildQuery,
    ClaimedHop,
    ClaimState,
    HopKind,
    HopResult,
    HopStatus,
    NewQuery,
    NextHop,
    QueryInput,
    QueryOutcome,
    QueryRole,
    QueryStatus,
    RequestDone,
    Usage,
)
from routeq.secrets import scrub
from routeq.summarize.mapreduce import (
    Piece,
    part_budget,
    piece_cache_key,
    plan_combines,
    split_document,
)
from routeq.summary_spec import SummaryTask, instructions, summary_messages
from routeq.timing import attempt_lease_s, longest_pause_s
from routeq.tokens import count_message_tokens
from routeq.worker.runtime import Runtime
from routeq.worker.slots import HeldSlot, SlotsUnavailableError

log = logging.getLogger("routeq.worker")


@dataclass(frozen=True)
class StepResult:
    """What the task must do after the step: publish hops, or retry the delivery later."""

    publish: list[NextHop] = field(default_factory=list)
    retry_in: float | None = None
    note: str = ""


# -- route ---------------------------------------------------------------------------------------


def route(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Ask the router for a tier (rules first, then the policy, after the features it needs),
    fit it to the context window, and create the first call hop (or split a long document)."""
    claim, early = _claim(rt, query_id, seq)
    if claim is None:
        return early
    hop, query = claim.hop, claim.query
    task = _summary_task(query)
    view = QueryView(
        query.text,
        query.input_tokens,
        query.metadata,
        query.user,
        task="answer" if task is None else "summarize",
        role=query.role.value,
        messages=query.messages,
        user_query_count=_earlier_queries(rt, query),
        query_id=str(query_id),
    )
    calls = _FeatureCalls(rt, hop, query)
    try:
        decision = (
            _rerun_decision(rt, query)
            or _shadow_decision(rt, query)
            or rt.router.decide(view, calls)
        )
    except InvalidDecisionError as error:
        return _route_failed(rt, hop, query, str(error), calls.usage())
    except ProviderError as error:
        # A feature's model call failed: route by the default tier rather than fail the query.
        decision = _fallback_decision(rt, f"a feature call failed ({short_error(error)})")
    except Exception as error:
        if calls.raised is not None or isinstance(error, SoftTimeLimitExceeded):
            raise  # the ledger or the runtime failed, not the policy: retry the delivery
        reason = f"policy {rt.router.policy.name!r} failed: {short_error(error)}"
        return _route_failed(rt, hop, query, reason, calls.usage())
    record = _decision_record(decision, calls.usage())
    if task is not None and query.role is QueryRole.DOCUMENT:
        split = _split(rt, query, task, rt.settings.tier(decision.tier))
        if split is not None:
            combine, parts = split
            record = replace(record, reason=f"{decision.reason}; {combine.reason}")
            return _finish(rt, hop, HopStatus.DONE, record, combine, None, parts)
    tier = fit_to_context(rt.settings, decision.tier, query.input_tokens)
    if tier is None:
        outcome = QueryOutcome(
            QueryStatus.FAILED,
            f"query of {query.input_tokens} tokens does not fit any tier's context window",
        )
        return _finish(rt, hop, HopStatus.DONE, record, None, outcome, query=query)
    reason = decision.reason
    if tier.name != decision.tier:
        reason += (
            f"; moved up to {tier.name}: {query.input_tokens} tokens exceed "
            f"{decision.tier}'s window"
        )
    record = replace(record, reason=reason)
    call = NextHop(
        query_id,
        seq + 1,
        HopKind.CALL,
        tier.name,
        tier.model,
        reason=f"routed: {reason}",
        background=query.role is QueryRole.SHADOW,
    )
    return _finish(rt, hop, HopStatus.DONE, record, call, None)


def _rerun_decision(rt: Runtime, query: QueryInput) -> Decision | None:
    """A re-run bought by a thumbs-down goes one tier above the answer it replaces, whatever
    the policy would say: the person has already told routeq the cheaper tier was not enough."""
    if query.role is not QueryRole.RERUN:
        return None
    tier = rerun_tier(rt.settings, query.original_tier)
    return Decision(
        tier=tier,
        reason=f"re-run after a thumbs-down on {query.original_tier or 'an unknown tier'}'s "
        f"answer: {tier}",
        policy="feedback-rerun",
        version="1",
    )


def _shadow_decision(rt: Runtime, query: QueryInput) -> Decision | None:
    """A shadow runs on the tier the shadow sample measures against (``shadow.tier``), set
    when the answer it repeats was accepted: routing it again would measure the router twice."""
    if query.role is not QueryRole.SHADOW:
        return None
    tier = shadow_tier(rt.settings, query.original_tier) or rt.settings.top_tier.name
    return Decision(
        tier=tier,
        reason=f"shadow of {query.original_tier or 'an unknown tier'}'s accepted answer: {tier}",
        policy="shadow",
        version="1",
    )


def _earlier_queries(rt: Runtime, query: QueryInput) -> int | None:
    """The user's earlier queries, for ``routing.first_queries``; asked of the ledger only when
    the option is on and the query is a user's answer query, so other routes cost nothing."""
    first = rt.router.first_queries
    if first is None or query.user is None or query.role is not QueryRole.ANSWER:
        return None
    return rt.ledger.count_earlier_queries(query.user, query.id, at_most=first.count)


def _route_failed(
    rt: Runtime, hop: ClaimedHop, query: QueryInput, reason: str, usage: Usage | None
) -> StepResult:
    """Fail the query for its policy's error, keeping what the feature calls spent."""
    record = HopResult(reason=reason, error=reason, usage=usage)
    outcome = QueryOutcome(QueryStatus.FAILED, reason)
    return _finish(rt, hop, HopStatus.DONE, record, None, outcome, query=query)


def _decision_record(decision: Decision, usage: Usage | None) -> HopResult:
    """What the route hop records of a decision: tier, policy, version, score and details."""
    details = dict(decision.details)
    if decision.rule is not None:
        details.setdefault("rule", decision.rule)
    return HopResult(
        tier=decision.tier,
        reason=decision.reason,
        policy=decision.policy,
        policy_version=decision.version,
        policy_score=decision.score,
        details=details,
        usage=usage,
    )


def _fallback_decision(rt: Runtime, why: str) -> Decision:
    return Decision(
        tier=default_tier(rt.settings),
        reason=f"{why}: default tier",
        policy=rt.router.policy.name,
        version=rt.router.policy.version,
        details={"fallback": True},
    )


class _FeatureCalls:
    """Model calls made for a policy's features, recorded on the route hop like any call."""

    def __init__(self, rt: Runtime, hop: ClaimedHop, query: QueryInput) -> None:
        self._rt, self._hop, self._query = rt, hop, query
        self._input_tokens = self._output_tokens = self._latency_ms = 0
        self._estimated = False
        self._calls = 0
        self.raised: Exception | None = None

    def complete(
        self, endpoint: ModelEndpoint, messages: list[dict[str, str]], max_tokens: int
    ) -> str:
        limited = endpoint.model_copy(
            update={"max_output_tokens": min(max_tokens, endpoint.max_output_tokens)}
        )
        try:
            response, latency_ms = _complete(
                self._rt, self._hop, limited, messages, query=self._query
            )
        except ProviderError:
            raise  # the feature failed: routed by the default tier
        except Exception as error:
            self.raised = error  # the ledger (or the delivery) failed under the call
            raise
        self._calls += 1
        self._input_tokens += response.input_tokens
        self._output_tokens += response.output_tokens
        self._latency_ms += latency_ms
        self._estimated |= response.tokens_estimated
        return response.content

    def usage(self) -> Usage | None:
        if not self._calls:
            return None
        return Usage(
            None, None, self._input_tokens, self._output_tokens, self._estimated, self._latency_ms
        )


def _summary_task(query: QueryInput) -> SummaryTask | None:
    return None if query.task is None else SummaryTask.model_validate(query.task)


def _split(
    rt: Runtime, query: QueryInput, task: SummaryTask, tier: TierConfig
) -> tuple[NextHop, list[NewQuery]] | None:
    """When the document must be split: the combine hop that waits for its parts, and the
    parts as child queries. None when it fits in one call on ``tier``."""
    config = rt.settings.summarize
    budget = part_budget(config, task, tier)
    parts = split_document(
        query.text, query.input_tokens, budget, task.spec, config.overlap_sentences
    )
    if parts is None:
        return None
    combine = NextHop(
        query.id,
        2,
        HopKind.COMBINE,
        reason=(
            f"split into {len(parts)} parts of at most {budget} tokens: {query.input_tokens} "
            f"tokens exceed the per-call budget (the smaller of summarize.max_chunk_tokens="
            f"{config.max_chunk_tokens} and what {tier.name}'s window leaves for text)"
        ),
    )
    return combine, _children(query, parts)


def _children(query: QueryInput, pieces: list[Piece]) -> list[NewQuery]:
    """Child queries of a split document: they inherit its metadata, user and batch. A piece
    summarised before (same text, role and spec) is reused instead of paid for again."""
    return [
        NewQuery(
            text=piece.text,
            input_tokens=piece.tokens,
            metadata=query.metadata,
            user=query.user,
            task=piece.task.model_dump(mode="json"),
            parent_id=query.id,
            # An erased piece's answer cannot be reused (privacy none).
            cache_key=piece_cache_key(piece) if query.privacy != "none" else None,
            batch_document_id=query.batch_document_id,
            role=QueryRole(piece.task.role),
            api_key_id=query.api_key_id,
            privacy=query.privacy,
        )
        for piece in pieces
    ]


# -- call ----------------------------------------------------------------------------------------


def call(rt: Runtime, query_id: uuid.UUID, seq: int, tier_name: str | None = None) -> StepResult:
    """Call the hop's tier; on an answer create the judge hop (or accept when judging is off).

    Before the claim, the provider guard is asked whether any of the tier's endpoints can take
    a call (``worker.guard``), then a slot of the tier's ``max_concurrency`` is taken, shared by
    all of the tier's workers (``worker.slots``). When the provider or the tier is full the
    delivery waits and retries without claiming the hop, so waiting does not count against the
    delivery cap. ``tier_name``: the hop's tier as its message says (the ledger is read for it
    when the message does not say, and for the hop's age only when there is a wait to bound)."""
    if tier_name is None or tier_name not in rt.settings.tier_names:
        found = rt.ledger.hop_age(query_id, seq)
        if found is None or found[0] is None:
            return _call(rt, query_id, seq, lambda: 0.0)
        tier_name = found[0]
    tier = rt.settings.tier(tier_name)
    at_top = rt.settings.next_tier(tier.name) is None

    def hop_age() -> float:
        found = rt.ledger.hop_age(query_id, seq)
        return 0.0 if found is None else found[1]

    waiting = _wait_for_endpoints(rt, tier.endpoints, hop_age, wait_for_breakers=at_top)
    if waiting is not None:
        return waiting
    # One holder per delivery: a duplicate delivery of the same hop must not share (and, on its
    # way out, release) the slot of the delivery that is calling.
    holder = f"{query_id}:{seq}:{uuid.uuid4().hex[:12]}"
    lease = attempt_lease_s(
        tier, longest_pause_s(rt.settings.retry), rt.settings.worker.lease_margin_s
    )
    try:
        slot = rt.slots.acquire(tier.name, holder, tier.max_concurrency, lease)
    except SlotsUnavailableError as error:
        return StepResult(retry_in=error.retry_after, note="tier slots unavailable")
    if not slot.granted:
        wait = min(slot.retry_after, 5.0) * (0.5 + rt.rng.random())
        return StepResult(retry_in=wait, note=f"{tier.name} is at max_concurrency")
    rt.call_slot = HeldSlot(tier.name, holder, time.monotonic() + lease)
    try:
        return _call(rt, query_id, seq, hop_age)
    finally:
        rt.call_slot = None
        # Given back once the judge hop is published: the judge need not wait for it.
        rt.after_publish.append(functools.partial(_release_slot, rt, tier.name, holder))


def _release_slot(rt: Runtime, tier: str, holder: str) -> None:
    with suppress(SlotsUnavailableError):  # the lease frees it anyway
        rt.slots.release(tier, holder)


def _call(rt: Runtime, query_id: uuid.UUID, seq: int, age_s: Callable[[], float]) -> StepResult:
    claim, early = _claim(rt, query_id, seq)
    if claim is None:
        return early
    hop, query = claim.hop, claim.query
    assert hop.tier is not None
    tier = rt.settings.tier(hop.tier)
    messages = _call_messages(query, tier)
    chain = [_with_params(endpoint, query.params) for endpoint in tier.endpoints]
    allowed = _gate_call(rt, hop, query, tier.name, chain[0], messages)
    if allowed is not None:
        return allowed
    called = _call_chain(rt, hop, chain, messages, query)
    if called.response is None:
        return _no_answer(rt, hop, tier, query, messages, called, age_s)
    response, endpoint = called.response, called.endpoint
    assert endpoint is not None
    record = HopResult(
        usage=_usage(response, called.latency_ms),
        details=called.details(),
        model=endpoint.model if endpoint.model != tier.model else None,
    )
    shadow = query.role is QueryRole.SHADOW
    # A shadow is judged even on a tier that is trusted unjudged: it exists to be compared.
    if not (rt.settings.judge.enabled and (tier.judge or shadow)):
        outcome = QueryOutcome(
            QueryStatus.DONE, f"judging is off for {tier.name}: answer accepted", answer_seq=seq
        )
        return _finish(rt, hop, HopStatus.DONE, record, None, outcome, query=query)
    judge_model = rt.settings.judge.model.model if rt.settings.judge.model else None
    judge = NextHop(
        query_id,
        seq + 1,
        HopKind.JUDGE,
        tier.name,
        judge_model,
        reason=f"judge the answer from {tier.name}",
        background=shadow,
    )
    return _finish(rt, hop, HopStatus.DONE, record, judge, None, query=query)


def _no_answer(
    rt: Runtime,
    hop: ClaimedHop,
    tier: TierConfig,
    query: QueryInput,
    messages: list[dict[str, str]],
    called: _Called,
    age_s: Callable[[], float],
) -> StepResult:
    """No endpoint of the tier answered. Capacity is waited for (the hop handed back, within
    the wait deadline); so is an open breaker at the top, where nothing is left to escalate
    to. A budget's refusal goes its own way. Anything else is a failed call: escalate."""
    at_top = rt.settings.next_tier(tier.name) is None
    waitable = called.only_waited and (at_top or not called.breaker_open)
    if waitable and age_s() < rt.settings.protection.wait_deadline_s:
        return _hand_back_to_wait(rt, hop, called.wait_s, called.error_text())
    error = called.error_text()
    if called.refused is not None:
        step = _over_budget(rt, hop, tier.name, query, messages, called.refused)
        refused = HopResult(error=error, details={"budget": called.refused.budget})
        return _move_on(rt, hop, HopStatus.FAILED, refused, step, query)
    step = _after_call_failure(rt, hop, tier.name, error, query.input_tokens)
    step = _kept_on_its_tier(query, step)
    failed = HopResult(error=error, details=called.details())
    return _move_on(rt, hop, HopStatus.FAILED, failed, step, query)


@dataclass
class _Called:
    """What calling a tier's endpoints in turn came to."""

    response: ChatResponse | None = None
    latency_ms: int = 0
    endpoint: ModelEndpoint | None = None
    # The endpoints passed over before the one that answered (or all of them), and why.
    passed_over: list[tuple[str, str]] = field(default_factory=list)
    # Nothing failed for good: every endpoint was unavailable or rate limited, so the call can
    # wait for capacity instead of escalating.
    only_waited: bool = True
    wait_s: float = 0.0
    refused: BudgetExceededError | None = None  # a budget could not afford the call
    breaker_open: bool = False  # an endpoint was passed over for its open breaker

    def error_text(self) -> str:
        if len(self.passed_over) == 1:
            return self.passed_over[0][1]
        tried = "; ".join(f"{model}: {why}" for model, why in self.passed_over)
        return f"every endpoint of the tier failed ({tried})"[:500]

    def details(self) -> dict[str, Any] | None:
        """On the hop: which endpoint answered, and which were passed over and why."""
        if not self.passed_over:
            return None
        details: dict[str, Any] = {
            "passed_over": [{"model": model, "why": why} for model, why in self.passed_over]
        }
        if self.endpoint is not None:
            details["endpoint"] = self.endpoint.model
        return details


def _call_chain(
    rt: Runtime,
    hop: ClaimedHop,
    chain: list[ModelEndpoint],
    messages: list[dict[str, str]],
    query: QueryInput,
) -> _Called:
    """Call the tier's endpoints in turn until one answers. An endpoint is passed over when its
    breaker is open or its rate limit cannot be met soon (nothing is sent), or when its call
    failed after its retries. A budget that cannot afford the call stops the chain: a fallback
    of similar strength costs about as much."""
    called = _Called()
    waits: list[float] = []
    for endpoint in chain:
        try:
            called.response, called.latency_ms = _complete(
                rt, hop, endpoint, messages, query.params, query=query
            )
        except BudgetExceededError as error:
            called.refused = error
            called.only_waited = False
            called.passed_over.append((endpoint.model, short_error(error)))
            return called
        except ProviderError as error:
            unavailable = isinstance(error, EndpointUnavailableError)
            if isinstance(error, EndpointUnavailableError) and error.why == "breaker":
                called.breaker_open = True
            if unavailable or error.status_code == 429:  # capacity, not a failure: wait it out
                waits.append(error.retry_after or 1.0)
            else:
                called.only_waited = False
            called.passed_over.append((endpoint.model, short_error(error)))
            continue
        called.endpoint = endpoint
        return called
    called.wait_s = min(waits, default=1.0)
    return called


def _over_budget(
    rt: Runtime,
    hop: ClaimedHop,
    tier: str,
    query: QueryInput,
    messages: list[dict[str, str]],
    refused: BudgetExceededError,
) -> NextStep:
    """A budget could not afford the call: keep an earlier answer if the query has one;
    else, for a budget that moves calls to a ``cheaper`` tier, the strongest tier below whose
    worst case fits what is left; else fail, saying which budget and what is left."""
    reason = short_error(refused)
    earlier = rt.ledger.last_answer_seq(hop.query_id, hop.seq)
    if earlier is None and on_exceed(rt.settings.spend, refused.budget) == "cheaper":
        names = rt.settings.tier_names
        tokens = count_message_tokens(messages)
        for lower in reversed(rt.settings.tiers[: names.index(tier)]):
            if fits(lower, query.input_tokens) and reservation(lower, tokens) <= refused.remaining:
                return Escalate(lower.name, f"{reason}; moved to the cheaper {lower.name}")
    return _earlier_answer_or(rt, hop, Fail(reason))


def _wait_for_endpoints(
    rt: Runtime,
    endpoints: list[ModelEndpoint],
    age_s: Callable[[], float],
    *,
    wait_for_breakers: bool,
) -> StepResult | None:
    """Before a claim: when no endpoint can take a call now (rate limits spent, a Retry-After
    running, or breakers open when ``wait_for_breakers``) and the hop has waited less than
    ``wait_deadline_s`` (``age_s`` reads it, only then), retry the delivery later without
    claiming, so waiting uses no delivery. None: go ahead (an open breaker is then passed
    over like a failed call)."""
    # A request costs at least its output allowance: a meter that could not let that through
    # could not let this call through.
    admissions = [
        rt.guard.admit(endpoint, endpoint.max_output_tokens, take=False) for endpoint in endpoints
    ]
    if any(admission.granted for admission in admissions):
        return None
    if not wait_for_breakers and any(a.why == "breaker" for a in admissions):
        return None
    if age_s() >= rt.settings.protection.wait_deadline_s:
        return None
    wait = min(admission.wait_s for admission in admissions)
    why = ", ".join(sorted({admission.why for admission in admissions}))
    return StepResult(retry_in=_jittered(rt, wait), note=f"waiting for the provider ({why})")


def _hand_back_to_wait(rt: Runtime, hop: ClaimedHop, wait_s: float, why: str) -> StepResult:
    """Give the claimed hop back, not counted against its delivery cap, and retry it later:
    every endpoint was unavailable, and the hop is still within its wait deadline."""
    rt.ledger.release(hop, waited=True)
    rt.claimed = None
    return StepResult(retry_in=_jittered(rt, wait_s), note=f"waiting for the provider: {why}")


def _jittered(rt: Runtime, wait_s: float) -> float:
    """A wait, capped so a long block is re-checked, and spread so waiters do not all return
    in the same instant."""
    return max(0.05, min(wait_s, 5.0)) * (0.75 + 0.5 * rt.rng.random())


def _max_hops(rt: Runtime) -> int:
    """A bound on a query's hops beyond which hooks may no longer move its calls: a route, and
    per tier a call, a judge and a move, twice over. Two hooks moving a call back and forth
    would otherwise create hops without end."""
    return 1 + 6 * len(rt.settings.tiers)


def _call_messages(query: QueryInput, tier: TierConfig) -> list[dict[str, str]]:
    """The prompt: a summary's instructions, or the query's chat turns (or its text as one user
    turn), after the tier's system prompt."""
    task = _summary_task(query)
    if task is not None:
        return summary_messages(task, query.text, tier.system_prompt)
    system = [{"role": "system", "content": tier.system_prompt}] if tier.system_prompt else []
    turns = query.messages or [{"role": "user", "content": query.text}]
    return [*system, *(dict(turn) for turn in turns)]


def _with_params(endpoint: ModelEndpoint, params: dict[str, Any] | None) -> ModelEndpoint:
    """The endpoint with the query's ``max_tokens`` applied (never above its own cap)."""
    wanted = (params or {}).get("max_tokens")
    if wanted is None or wanted >= endpoint.max_output_tokens:
        return endpoint
    return endpoint.model_copy(update={"max_output_tokens": int(wanted)})


def _gate_call(
    rt: Runtime,
    hop: ClaimedHop,
    query: QueryInput,
    tier: str,
    endpoint: ModelEndpoint,
    messages: list[dict[str, str]],
) -> StepResult | None:
    """Ask the hooks about the call: None to go ahead, or the step's result when a hook denied
    it (the query keeps an earlier answer, or fails) or moved it to another tier. The call's
    worst case is priced only when there are hooks to tell: counting the prompt's tokens is
    work the call step does once more anyway."""
    if not rt.hooks:
        return None
    context = CallContext(
        query_id=hop.query_id,
        seq=hop.seq,
        tier=tier,
        model=endpoint.model,
        role=query.role,
        input_tokens=query.input_tokens,
        max_cost=_max_cost(endpoint, messages),
        metadata=query.metadata,
        user=query.user,
    )
    decision = gate(rt.hooks, context)
    if isinstance(decision, Allow):
        return None
    if isinstance(decision, Deny):
        reason = f"call on {tier} denied: {decision.reason}"
        step = _earlier_answer_or(rt, hop, Fail(reason))
        gated = HopResult(reason=reason, details={"gate": "denied"})
        return _move_on(rt, hop, HopStatus.DONE, gated, step, query)
    if hop.seq > _max_hops(rt):
        return None  # hooks have moved this query about enough: make the call as planned
    if decision.tier not in rt.settings.tier_names:
        reason = f"a hook moved the call to unknown tier {decision.tier!r}: {decision.reason}"
        gated = HopResult(reason=reason, details={"gate": "denied"})
        return _move_on(rt, hop, HopStatus.DONE, gated, Fail(reason), query)
    target = fit_to_context(rt.settings, decision.tier, query.input_tokens)
    if target is None or target.name == tier:
        return None  # nowhere else to go: make the call as planned
    reason = f"moved from {tier} to {target.name}: {decision.reason}"
    move = Escalate(target.name, reason)
    gated = HopResult(reason=reason, details={"gate": "moved", "to": target.name})
    return _move_on(rt, hop, HopStatus.DONE, gated, move, query)


# -- judge ---------------------------------------------------------------------------------------


def judge(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Score the previous hop's answer; accept it, or escalate as the escalation policy says.

    A tier whose ``judge_fail_mode`` is ``wait`` holds its answers while the judge is
    unavailable (its breaker open, its rate limit spent, or its calls failing), for at most
    ``protection.wait_deadline_s`` from the judge hop's creation; then it fails closed."""
    age_s = 0.0
    if any(tier.judge_fail_mode == "wait" for tier in rt.settings.tiers):
        found = rt.ledger.hop_age(query_id, seq)
        judge_model = rt.settings.judge.model
        if found is not None and found[0] is not None and judge_model is not None:
            age_s = found[1]
            if rt.settings.tier(found[0]).judge_fail_mode == "wait":
                waiting = _wait_for_endpoints(
                    rt, [judge_model], lambda: age_s, wait_for_breakers=True
                )
                if waiting is not None:
                    return waiting
    claim, early = _claim(rt, query_id, seq, with_answer=True)
    if claim is None:
        return early
    hop, query = claim.hop, claim.query
    answer = claim.answer
    assert answer is not None and answer.tier is not None
    tier = rt.settings.tier(answer.tier)
    try:
        verdict, usage = _verdict(rt, hop, tier, query, answer.output, answer.finish_reason)
    except _JudgeUnavailableError as unavailable:
        if age_s < rt.settings.protection.wait_deadline_s:
            return _hand_back_to_wait(rt, hop, unavailable.wait_s, unavailable.reason)
        waited = f"the judge was unavailable for {age_s:.0f} s: {unavailable.reason}"
        verdict, usage = Verdict(False, waited, "judge-error"), None
    step = after_verdict(rt.settings, tier.name, verdict, query.input_tokens, rt.escalation)
    step = _kept_on_its_tier(query, step)
    details: dict[str, Any] = {"source": verdict.source}
    if query.role is QueryRole.SHADOW and rt.settings.shadow.pairwise:
        details, usage = _compare_pairwise(rt, hop, query, answer.output or "", details, usage)
    reason = verdict.reason
    if verdict.unjudged:
        # Say what became of the answer, not what the fail mode wished: a tier that fails
        # closed with no tier above still accepts its answer, unjudged.
        accepted = isinstance(step, Accept)
        details["judge_outcome"] = "accepted_unjudged" if accepted else "failed_closed"
        became = "answer accepted unjudged" if accepted else "answer escalated unjudged"
        reason = f"judge failed, fail {tier.judge_fail_mode}: {became}: {verdict.reason}"
    record = HopResult(
        passed=verdict.passed,
        reason=reason,
        judge_score=verdict.score,
        details=details,
        usage=usage,
        error=verdict.reason if verdict.unjudged else None,
    )
    return _move_on(
        rt,
        hop,
        HopStatus.DONE,
        record,
        step,
        query,
        answer_seq=seq - 1,
        committed=lambda: _after_verdict_hooks(rt, query, tier.name, verdict, step),
    )


def _verdict(
    rt: Runtime,
    hop: ClaimedHop,
    tier: TierConfig,
    query: QueryInput,
    answer: str | None,
    finish_reason: str | None,
) -> tuple[Verdict, Usage | None]:
    """Heuristics first (free), the summary checks for summaries (free), then the LLM judge
    when one is configured. The judge call's tokens are returned even when its reply could not
    be read: they were paid for."""
    task = _summary_task(query)
    question, rubric = query.text, rt.settings.judge.rubric
    # A document that mentions "function" does not ask for code: no code-block rule there.
    failure = heuristic_failure("" if task else question, answer, finish_reason)
    if failure is not None:
        return Verdict(False, failure, "heuristic"), None
    verifier = rt.verifier
    if task is None and verifier is not None and verifier.applies_to(tier.name):
        # A trained verifier of cheap answers: free next to a judge call, and it sees signs
        # of a wrong answer (a miscalculation, an unfinished text) that a rubric misses.
        p_good = verifier.p_good(question, answer or "")
        if p_good < verifier.min_p_good:
            reason = (
                f"verifier: the answer looks wrong (P(good) {p_good:.2f} < {verifier.min_p_good:g})"
            )
            return Verdict(False, reason, "verifier"), None
    if task is not None:
        condensing = task.role != "combine"  # partial summaries may be kept nearly whole
        failure = summary_failure(task.spec, query.text, answer or "", condensing=condensing)
        if failure is not None:
            return Verdict(False, f"summary check failed: {failure}", "summary-check"), None
        question = f"{instructions(task)}\n\nText to summarize:\n{query.text}"
        rubric = rt.settings.judge.summary_rubric
    config = rt.settings.judge
    if config.model is None:
        return Verdict(True, "heuristic checks passed", "heuristic"), None
    budget = None
    if config.context_window is not None:
        budget = JudgeBudget(
            config.context_window, config.model.max_output_tokens, config.token_margin
        )
    usage: Usage | None = None
    try:
        # Fitted to the judge's window (the source cut to head and tail, marked): a prompt
        # that cannot fit goes to the fail mode like any judge failure.
        prompt = fit_judge_messages(
            rubric, question, answer or "", budget, question_label="source" if task else "question"
        )
        response, latency_ms = _complete(rt, hop, config.model, prompt.messages, query=query)
        usage = _usage(response, latency_ms)
        scored = parse_judge_reply(response.content, truncated=response.finish_reason == "length")
    except (ProviderError, JudgeError) as error:
        detail = judge_error_detail(error, short_error(error))
        waitable = isinstance(error, ProviderError) and (
            isinstance(error, EndpointUnavailableError) or error.retryable
        )
        if tier.judge_fail_mode == "wait" and waitable:
            assert isinstance(error, ProviderError)
            raise _JudgeUnavailableError(detail, error.retry_after or 1.0) from error
        accept = tier.judge_fail_mode == "open"
        return Verdict(accept, detail, "judge-error"), usage
    passed = scored.score >= config.pass_threshold
    reason = f"score {scored.score}/10 (pass >= {config.pass_threshold}): {scored.reason}"
    return Verdict(passed, with_fit_notes(reason, prompt.notes), "llm", float(scored.score)), usage


class _JudgeUnavailableError(Exception):
    """The judge could not be called or failed transiently, for a tier that waits for it."""

    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(reason)
        self.reason, self.wait_s = reason, wait_s


def _after_verdict_hooks(
    rt: Runtime, query: QueryInput, tier: str, verdict: Verdict, step: NextStep
) -> None:
    context = VerdictContext(
        query_id=query.id,
        tier=tier,
        passed=verdict.passed,
        source=verdict.source,
        score=verdict.score,
        reason=verdict.reason,
        next_step=type(step).__name__.lower(),
        next_tier=step.tier if isinstance(step, Escalate) else None,
        role=query.role,
        metadata=query.metadata,
        user=query.user,
    )
    for failure in notify(rt.hooks, "after_verdict", context):
        log.error("hook after_verdict failed: %s", scrub(failure))


# -- combine (split documents) -------------------------------------------------------------------


def combine(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Once every piece of a split document is finished: combine the latest stage's summaries
    (creating the next stage's child queries), or close the document with the one summary left.
    Published by the last piece to finish; until then a delivery is a no-op."""
    children = rt.ledger.children(query_id)
    waiting = sum(child.status not in FINAL_QUERY_STATUSES for child in children)
    if waiting:
        return StepResult(note=f"waiting for {waiting} of {len(children)} pieces")
    claim, early = _claim(rt, query_id, seq)
    if claim is None:
        return early
    hop, query = claim.hop, claim.query
    task = _summary_task(query)
    assert task is not None, "only split summaries have combine hops"
    stage = max(child.task.get("stage", 0) for child in children)
    current = sorted(
        (child for child in children if child.task.get("stage", 0) == stage),
        key=lambda child: child.task.get("part") or 0,
    )
    what = "part" if stage == 0 else f"stage-{stage} combine"
    failed = [child for child in current if child.status is not QueryStatus.DONE]
    if failed:
        first = failed[0]
        reason = (
            f"{len(failed)} of {len(current)} {what}s failed; {what} "
            f"{first.task.get('part')}: {first.reason}"
        )
        outcome = QueryOutcome(QueryStatus.FAILED, reason)
        return _finish(
            rt, hop, HopStatus.DONE, HopResult(reason=reason), None, outcome, query=query
        )
    if stage > 0 and len(current) == 1:
        reason = f"summary combined from {_parts_of(children)} parts in {stage} stage(s)"
        outcome = QueryOutcome(QueryStatus.DONE, reason, from_query=current[0].id)
        return _finish(
            rt, hop, HopStatus.DONE, HopResult(reason=reason), None, outcome, query=query
        )
    # Combines are routed like any query: size them for the tier with the least room.
    combine_task = SummaryTask(role="combine", part=1, parts=1, stage=stage + 1, spec=task.spec)
    budget = min(part_budget(rt.settings.summarize, combine_task, t) for t in rt.settings.tiers)
    try:
        partials = [child.answer or "" for child in current]
        pieces = plan_combines(partials, stage, budget, task.spec)
    except ValueError as error:
        reason = f"cannot combine the summaries: {error}"
        outcome = QueryOutcome(QueryStatus.FAILED, reason)
        return _finish(
            rt, hop, HopStatus.DONE, HopResult(reason=reason), None, outcome, query=query
        )
    reason = f"combine {len(current)} {what} summaries in {len(pieces)} call(s)"
    waiter = NextHop(
        query_id, seq + 1, HopKind.COMBINE, reason=f"wait for the stage-{stage + 1} combines"
    )
    return _finish(
        rt, hop, HopStatus.DONE, HopResult(reason=reason), waiter, None, _children(query, pieces)
    )


def _parts_of(children: list[ChildQuery]) -> int:
    return sum(1 for child in children if child.role is QueryRole.PART)


# -- shared mechanics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    """A claimed hop with what its claim read: the query, and a judge hop's answer."""

    hop: ClaimedHop
    query: QueryInput
    answer: CallOutput | None = None


def _claim(
    rt: Runtime, query_id: uuid.UUID, seq: int, *, with_answer: bool = False
) -> tuple[_Claimed | None, StepResult]:
    """Claim the hop, reading the query (and with ``with_answer`` the answer to judge) in the
    same round trip. Without a claim, say what to do instead (nothing, re-publish, or retry)."""
    settings = rt.settings
    claim = rt.ledger.claim(
        query_id,
        seq,
        lease_s=rt.claim_lease_s,  # every attempt renews it from there (``_complete``)
        max_deliveries=settings.retry.max_deliveries,
        worker=rt.node,
        with_answer=with_answer,
        hold=rt.hold_claim,
    )
    if claim.state is ClaimState.CLAIMED:
        assert claim.hop is not None
        rt.claimed = claim.hop  # what the task hands back if the step then fails
        if claim.query is None:
            raise UnreadableQueryError(claim.unreadable or "the query cannot be read")
        rt.inline_wait_left_s = settings.protection.max_inline_wait_s
        return _Claimed(claim.hop, claim.query, claim.answer), StepResult()
    if claim.state is ClaimState.BUSY:
        return None, StepResult(retry_in=claim.retry_in, note="another delivery owns the hop")
    if claim.state is ClaimState.FINISHED:
        backlog = rt.ledger.backlog(query_id)
        return None, StepResult(publish=backlog, note="duplicate delivery")
    if claim.state is ClaimState.EXHAUSTED:
        assert claim.hop is not None
        return None, after_exhausted(rt, claim.hop)
    return None, StepResult(note="no such hop")


def after_exhausted(rt: Runtime, hop: ClaimedHop, reason: str | None = None) -> StepResult:
    """A hop that failed for good (past its delivery cap, or found failed by the reconciler):
    move the query on like any other failure. This must never leave the query without a live
    hop or a final state, so when moving on itself fails (the query's input crashes the step,
    say), the query is closed as failed with both reasons, without reading its input."""
    reason = reason or (
        f"hop {hop.seq} ({hop.kind}) gave up after {rt.settings.retry.max_deliveries} deliveries"
    )
    try:
        return StepResult(publish=_move_on_after_failure(rt, hop, reason))
    except Exception as error:
        closing = f"{reason}; the query could not be moved on ({short_error(error)})"
        return _failed_query(rt, hop.query_id, closing)


def _move_on_after_failure(rt: Runtime, hop: ClaimedHop, reason: str) -> list[NextHop]:
    query = rt.ledger.query_input(hop.query_id)
    if hop.kind is HopKind.CALL and hop.tier is not None:
        step: NextStep = _after_call_failure(rt, hop, hop.tier, reason, query.input_tokens)
    elif hop.kind is HopKind.JUDGE:
        # The answer exists; a judge that cannot run is a judge failure, settled by the fail mode.
        answer = rt.ledger.call_output(hop.query_id, hop.seq - 1)
        assert answer.tier is not None
        tier = rt.settings.tier(answer.tier)
        verdict = Verdict(tier.judge_fail_mode == "open", reason, "judge-error")
        step = after_verdict(rt.settings, tier.name, verdict, query.input_tokens, rt.escalation)
    else:
        step = Fail(reason)
    next_hop, outcome = _plan(rt, hop, _kept_on_its_tier(query, step), answer_seq=hop.seq - 1)
    finished = rt.ledger.fail_exhausted(hop, outcome, next_hop)
    if finished.closed and outcome is not None:
        _on_close_hooks(rt, query, outcome)
    return finished.publish


def _after_call_failure(
    rt: Runtime, hop: ClaimedHop, tier: str, error: str, input_tokens: int
) -> NextStep:
    """Escalate past a failed call; at the top, fall back to the best earlier answer (one a
    judge failed) rather than failing a query that has an answer."""
    step = after_call_failure(rt.settings, tier, error, input_tokens, rt.escalation)
    return _earlier_answer_or(rt, hop, step) if isinstance(step, Fail) else step


def _earlier_answer_or(rt: Runtime, hop: ClaimedHop, failure: Fail) -> NextStep:
    """Accept the query's latest earlier answer (one a judge failed) instead of ``failure``,
    when it has one: a query with an answer is not failed for a call it could not make."""
    earlier = rt.ledger.last_answer_seq(hop.query_id, hop.seq)
    if earlier is None:
        return failure
    return Accept(f"{failure.reason}; accepted the earlier answer of hop {earlier}", earlier)


def _complete(
    rt: Runtime,
    hop: ClaimedHop,
    endpoint: ModelEndpoint,
    messages: list[dict[str, str]],
    params: dict[str, Any] | None = None,
    query: QueryInput | None = None,
) -> tuple[ChatResponse, int]:
    """Call a model with retries. Every attempt is on the ledger *before* it is sent (so a
    worker killed mid-call leaves an ``unknown`` request with its possible cost, never a paid
    call with no trace) and is completed with its cost after; each one renews the hop's lease
    for the attempt (and the pause) ahead. ``query``: whose budgets the call is charged to
    (``[spend]``); each attempt reserves its worst case against them before it is sent."""
    latency: list[int] = []
    margin = rt.settings.worker.lease_margin_s
    temperature = (params or {}).get("temperature")
    request = ChatRequest(
        messages=messages,
        max_tokens=endpoint.max_output_tokens,
        temperature=None if temperature is None else float(temperature),
    )
    prompt_tokens = count_message_tokens(messages)
    max_cost = call_cost(endpoint, prompt_tokens, endpoint.max_output_tokens)
    request_ids: dict[int, int] = {}
    charged = _charges(rt, query)
    limit = rt.settings.spend.max_cost_per_query if query is not None else None
    reserve = reservation(endpoint, prompt_tokens) if charged or limit else Decimal(0)

    def before(try_number: int, pause_s: float) -> ChatRequest:
        _take_capacity(rt, hop, endpoint, prompt_tokens + endpoint.max_output_tokens)
        slot = rt.call_slot
        # through this attempt and the longest pause after it
        needed_s = attempt_lease_s(endpoint, longest_pause_s(rt.settings.retry), margin)
        if slot is not None and hop.kind is HopKind.CALL and not slot.covers(needed_s):
            # Renew the tier slot for the attempt ahead (the same holder: re-entrant), sized
            # for the endpoint about to be called: a fallback may be slower than the first.
            # A first attempt right after the slot was taken for it needs no renewal.
            with suppress(SlotsUnavailableError):
                rt.slots.acquire(
                    slot.tier,
                    slot.holder,
                    rt.settings.tier(slot.tier).max_concurrency,
                    needed_s,
                )
                rt.call_slot = slot.renewed(needed_s)
        try:
            request_id = rt.ledger.begin_request(
                hop,
                try_number=try_number,
                model=endpoint.model,
                input_price=endpoint.input_price_per_mtok,
                output_price=endpoint.output_price_per_mtok,
                max_cost=max_cost,
                lease_s=attempt_lease_s(endpoint, 0.0, margin),
                charges=charged,
                reserve=reserve,
                max_query_cost=limit,
            )
        except BudgetExceededError:
            rt.guard.report(endpoint, "unsent")  # a probe it held is free for another call
            raise
        request_ids[try_number] = request_id
        return replace(request, request_id=str(request_id))

    def record(attempt: Attempt) -> None:
        response, error = attempt.response, attempt.error
        cost = Decimal(0)
        if response is not None:
            cost = call_cost(endpoint, response.input_tokens, response.output_tokens)
            latency.append(attempt.latency_ms)
        done = RequestDone(
            hop,
            request_ids[attempt.try_number],
            outcome="ok" if response is not None else "error",
            latency_ms=attempt.latency_ms,
            cost=cost,
            input_tokens=response.input_tokens if response else 0,
            output_tokens=response.output_tokens if response else 0,
            tokens_estimated=response.tokens_estimated if response else False,
            http_status=error.status_code if error else 200,
            error=short_error(error) if error else None,
            settle_budgets=bool(charged),
        )
        if response is not None:
            rt.unrecorded.append(done)  # written with the hop's finish, in its transaction
        else:
            pause = attempt.pause_s
            rt.ledger.finish_request(
                hop,
                done.request_id,
                outcome=done.outcome,
                latency_ms=done.latency_ms,
                http_status=done.http_status,
                error=done.error,
                lease_s=None if pause is None else attempt_lease_s(endpoint, pause, margin),
                settle_budgets=done.settle_budgets,
            )
        _tell_guard(rt, endpoint, error)

    response = complete_with_retries(
        rt.provider(endpoint), request, rt.settings.retry, record, before_attempt=before
    )
    return response, latency[-1]


def _charges(rt: Runtime, query: QueryInput | None) -> list[Charge]:
    """The budgets this query's calls are charged to (none unless ``[spend]`` has budgets)."""
    spend = rt.settings.spend
    if query is None or not spend.budgets:
        return []
    batch_id = None
    if needs_batch(spend) and query.batch_document_id is not None:
        batch_id = rt.ledger.batch_of(query.batch_document_id)
    return charges(spend, query, batch_id)


def _take_capacity(rt: Runtime, hop: ClaimedHop, endpoint: ModelEndpoint, tokens: int) -> None:
    """Take a unit of the endpoint's rate limit for the attempt ahead, waiting for it (the
    hop's lease renewed for the wait) up to ``protection.max_inline_wait_s`` per delivery. An
    open breaker, or a longer wait, raises ``EndpointUnavailableError``: nothing is sent."""
    while True:
        admission = rt.guard.admit(endpoint, tokens)
        if admission.granted:
            return
        if admission.why == "breaker" or admission.wait_s > rt.inline_wait_left_s:
            raise EndpointUnavailableError(
                f"{endpoint.model} not tried: {UNAVAILABLE_BECAUSE[admission.why]} "
                f"(for {admission.wait_s:.1f} s more)",
                why=admission.why,
                wait_s=admission.wait_s,
            )
        pause = admission.wait_s * (1.0 + 0.1 * rt.rng.random())
        lease = pause + attempt_lease_s(endpoint, 0.0, rt.settings.worker.lease_margin_s)
        if not rt.ledger.renew(hop, lease):
            raise DeliverySupersededError(
                f"hop {hop.seq} of query {hop.query_id}: delivery {hop.delivery} no longer "
                "owns it; not calling the model"
            )
        time.sleep(pause)
        rt.inline_wait_left_s -= pause


UNAVAILABLE_BECAUSE = {
    "rate": "its rate limit is spent",
    "retry-after": "the provider asked to wait (Retry-After)",
    "breaker": "its circuit breaker is open after repeated failures",
    "unreachable": "the rate-limit store (Redis) is unreachable",
    "ok": "no reason",
}


def _tell_guard(rt: Runtime, endpoint: ModelEndpoint, error: ProviderError | None) -> None:
    """Tell the guard how the attempt went: an answer closes the breaker; a 429 (or a
    Retry-After on any transient error) blocks the endpoint for every worker; other transient
    failures count toward opening its breaker. A permanent error is the request's fault, not
    the endpoint's, and says nothing about its health."""
    if error is None:
        rt.guard.report(endpoint, "ok")
    elif error.status_code == 429 or (error.retryable and error.retry_after is not None):
        rt.guard.report(endpoint, "limited", error.retry_after)
    elif error.retryable:
        rt.guard.report(endpoint, "failed")


def _max_cost(endpoint: ModelEndpoint, messages: list[dict[str, str]]) -> Decimal:
    """The most a call can cost: its prompt and the whole output allowance."""
    return call_cost(endpoint, count_message_tokens(messages), endpoint.max_output_tokens)


def _usage(response: ChatResponse, latency_ms: int) -> Usage:
    return Usage(
        response.content,
        response.finish_reason,
        response.input_tokens,
        response.output_tokens,
        response.tokens_estimated,
        latency_ms,
    )


def _plan(
    rt: Runtime, hop: ClaimedHop, step: NextStep, answer_seq: int | None = None
) -> tuple[NextHop | None, QueryOutcome | None]:
    """Turn a next step into the hop to create or the outcome to record."""
    if isinstance(step, Escalate):
        model = rt.settings.tier(step.tier).model
        call = NextHop(hop.query_id, hop.seq + 1, HopKind.CALL, step.tier, model, step.reason)
        return call, None
    if isinstance(step, Accept):
        answer = step.answer_seq if step.answer_seq is not None else answer_seq
        return None, QueryOutcome(QueryStatus.DONE, step.reason, answer_seq=answer)
    return None, QueryOutcome(QueryStatus.FAILED, step.reason)


def _move_on(
    rt: Runtime,
    hop: ClaimedHop,
    status: HopStatus,
    record: HopResult,
    step: NextStep,
    query: QueryInput,
    answer_seq: int | None = None,
    committed: Callable[[], None] | None = None,
) -> StepResult:
    next_hop, outcome = _plan(rt, hop, step, answer_seq)
    return _finish(rt, hop, status, record, next_hop, outcome, query=query, committed=committed)


def _finish(
    rt: Runtime,
    hop: ClaimedHop,
    status: HopStatus,
    record: HopResult,
    next_hop: NextHop | None,
    outcome: QueryOutcome | None,
    children: list[NewQuery] | None = None,
    *,
    query: QueryInput | None = None,
    committed: Callable[[], None] | None = None,
) -> StepResult:
    """Close the hop and take the next step in one transaction; then run ``committed`` (the
    after-verdict hooks) and, when this closed the query, tell the hooks (``query`` is what
    they are told about). A ``redact``-mode query's answer, judge reply and reasons are
    redacted before they are stored."""
    if query is not None and query.privacy == "redact":
        pattern = redactor(rt.settings.privacy)
        record = _redacted(record, pattern)
        if outcome is not None:
            outcome = replace(outcome, reason=redact(outcome.reason, pattern))
        if next_hop is not None and next_hop.reason is not None:
            next_hop = replace(next_hop, reason=redact(next_hop.reason, pattern))
    finished = rt.ledger.finish_hop(
        hop,
        status=status,
        result=record,
        next_hop=next_hop,
        outcome=outcome,
        children=children or [],
        shadow=_shadow_query(rt, query, outcome),
        requests_done=rt.unrecorded,
        closes_alone=query is not None and query.parent_id is None and query.privacy != "none",
    )
    rt.unrecorded = []
    if not finished.owned:
        return StepResult(note="superseded by a newer delivery; result discarded")
    if committed is not None and rt.hooks:
        committed()
    if finished.closed and outcome is not None and query is not None:
        _on_close_hooks(rt, query, outcome)
    return StepResult(publish=finished.publish)


def _redacted(record: HopResult, pattern: Redactor) -> HopResult:
    """The hop's texts with the configured patterns replaced (``[privacy] redact``)."""
    usage = record.usage
    if usage is not None and usage.output is not None:
        usage = replace(usage, output=redact(usage.output, pattern))
    return replace(
        record,
        usage=usage,
        reason=None if record.reason is None else redact(record.reason, pattern),
        error=None if record.error is None else redact(record.error, pattern),
    )


SHADOWED_ROLES = (QueryRole.ANSWER, QueryRole.DOCUMENT)


def _shadow_query(
    rt: Runtime, query: QueryInput | None, outcome: QueryOutcome | None
) -> NewQuery | None:
    """The shadow to create if this step closes ``query`` with an accepted answer that is in
    the shadow sample and came from a tier below the shadow tier; None otherwise.

    Only a user's answer or a document summarised in one call is shadowed: a split document's
    answer is many calls, and its pieces are not answers anyone reads. The shadow copies the
    prompt (text stays in Postgres, as for every query) and the batch document, so the batch's
    spend can say what its shadows cost; it has no parent, so it is no part of the family."""
    config = rt.settings.shadow
    if (
        not config.enabled
        or query is None
        or outcome is None
        or outcome.status is not QueryStatus.DONE
        or outcome.answer_seq is None
        or query.role not in SHADOWED_ROLES
        or not shadow_sampled(query.id, config.share)
    ):
        return None
    answered_on = rt.ledger.hop_tier(query.id, outcome.answer_seq)
    if shadow_tier(rt.settings, answered_on) is None:
        return None
    return NewQuery(
        query.text,
        query.input_tokens,
        metadata=query.metadata,
        user=query.user,
        task=query.task,
        batch_document_id=query.batch_document_id,
        role=QueryRole.SHADOW,
        messages=query.messages,
        params=query.params,
        shadow_of=query.id,
        api_key_id=query.api_key_id,
        privacy=query.privacy,
    )


def _kept_on_its_tier(query: QueryInput, step: NextStep) -> NextStep:
    """A shadow never escalates: its answer is kept with its verdict, and a call that failed
    fails the shadow. Escalating would measure a third tier and pay for it, and the user's
    answer is settled already."""
    if query.role is not QueryRole.SHADOW or not isinstance(step, Escalate):
        return step
    return Accept(f"{step.reason}; a shadow does not escalate: its answer is kept as judged")


def _compare_pairwise(
    rt: Runtime,
    hop: ClaimedHop,
    query: QueryInput,
    shadow_answer: str,
    details: dict[str, Any],
    usage: Usage | None,
) -> tuple[dict[str, Any], Usage | None]:
    """Ask the judge which of the original's answer and the shadow's is better; the verdict
    goes in the judge hop's details (``pairwise``), its tokens into the hop's usage. A pairwise
    call that fails is noted and changes nothing else: the pointwise verdict stands."""
    judge_model = rt.settings.judge.model
    original = rt.ledger.final_answer(query.shadow_of) if query.shadow_of else None
    if judge_model is None or original is None:
        return details, usage
    first = shadow_first(query.id)
    task = _summary_task(query)
    question = query.text if task is None else f"{instructions(task)}\n\n{query.text}"
    messages = pairwise_messages(question, original, shadow_answer, shadow_shown_first=first)
    try:
        response, latency_ms = _complete(rt, hop, judge_model, messages)
    except ProviderError as error:
        return {**details, "pairwise_error": short_error(error)}, usage
    usage = _added(usage, _usage(response, latency_ms))
    try:
        preference = parse_pairwise_reply(response.content, shadow_shown_first=first)
    except JudgeError as error:
        return {**details, "pairwise_error": short_error(error)}, usage
    return {**details, "pairwise": preference}, usage


def _added(usage: Usage | None, more: Usage) -> Usage:
    """Two judge calls' usage as one hop's: the pointwise reply stays the hop's output."""
    if usage is None:
        return replace(more, output=None, finish_reason=None)
    return replace(
        usage,
        input_tokens=usage.input_tokens + more.input_tokens,
        output_tokens=usage.output_tokens + more.output_tokens,
        tokens_estimated=usage.tokens_estimated or more.tokens_estimated,
        latency_ms=usage.latency_ms + more.latency_ms,
    )


def _on_close_hooks(rt: Runtime, query: QueryInput, outcome: QueryOutcome) -> None:
    closed = ClosedQuery(
        query.id, outcome.status, outcome.reason, query.role, query.metadata, query.user
    )
    _notify_closed(rt, closed)


def _notify_closed(rt: Runtime, closed: ClosedQuery) -> None:
    for failure in notify(rt.hooks, "on_close", closed):
        log.error("hook on_close failed: %s", scrub(failure))


def end_delivery(rt: Runtime) -> None:
    """After every step (the task wrappers call it): commit a claim the step left held, so
    that a failed step's delivery is counted before its hop is handed back, and write the
    provider requests it did not record with a finish."""
    rt.hold_claim = False
    try:
        rt.ledger.commit_held_claim()
    finally:
        record_unrecorded(rt)


def after_publish(rt: Runtime) -> None:
    """After the task published the step's hops (or after the step failed): the Redis work
    the next hop did not need to wait for (a call's tier slot). Each item is tried on its own;
    a failure is logged (a slot not given back frees itself when its lease ends)."""
    work, rt.after_publish = rt.after_publish, []
    for item in work:
        try:
            item()
        except Exception as error:
            log.warning("after the step: %s", short_error(error))


def record_unrecorded(rt: Runtime) -> None:
    """Write the successful requests of a step that ended without finishing its hop (it
    raised, waited, or handed the hop back): money spent is on the ledger either way."""
    if rt.unrecorded:
        done, rt.unrecorded = rt.unrecorded, []
        rt.ledger.finish_requests(done)


def short_error(error: BaseException) -> str:
    """An error as stored on the ledger or logged: its type and message, scrubbed of every
    configured secret (a provider error or an invalid header can carry an API key), and kept
    short."""
    return scrub(f"{type(error).__name__}: {error}")[:500]


# -- the reconciler's hand: a query whose last hop ended without a next step -------------------


def settle_orphan(rt: Runtime, query_id: uuid.UUID) -> StepResult:
    """Move on a query that has no live hop and no final state: its last hop failed (the query
    escalates, falls back or fails, as if the hop had just failed), or anything else (it fails
    with the reason). Never raises for a query whose input crashes the steps."""
    try:
        view = rt.ledger.view(query_id)
        if view.finished or not view.hops:
            return StepResult(note="nothing to settle")
        last = view.hops[-1]
        hop_id = rt.ledger.hop_id(query_id, last.seq)
        claimed = ClaimedHop(
            hop_id, query_id, last.seq, last.kind, last.tier, last.model, last.attempts
        )
        if last.status is HopStatus.FAILED:
            why = last.error or f"hop {last.seq} ({last.kind}) failed"
            return after_exhausted(rt, claimed, why)
        reason = (
            f"no step followed hop {last.seq} ({last.kind}, {last.status}); closed by the "
            "reconciler"
        )
    except Exception as error:
        reason = f"the reconciler could not read the query ({short_error(error)})"
    return _failed_query(rt, query_id, reason)


def _failed_query(rt: Runtime, query_id: uuid.UUID, reason: str) -> StepResult:
    """Close a query as failed without reading its input; the hooks hear of it with what the
    ledger knows (its input may be what crashed the steps)."""
    finished = rt.ledger.fail_query(query_id, reason)
    if finished.closed and rt.hooks:
        try:
            role = rt.ledger.view(query_id).role  # the view reads no metadata or text
        except Exception:
            role = QueryRole.ANSWER
        _notify_closed(rt, ClosedQuery(query_id, QueryStatus.FAILED, reason, role))
    return StepResult(publish=finished.publish, note=reason)
