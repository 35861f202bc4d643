"""A query's journey, one step per function: claim → act → record → say what to publish.

Each step is called by a thin Celery task (``worker.tasks``) and returns a ``StepResult``; the task
publishes the returned hops only after the ledger transaction committed. Reading this file top to
bottom is reading the pipeline: route, call, judge, and for documents too long for one call,
combine (map-reduce: the route step splits the document into child queries, one per part, and the
combine step joins their summaries once all of them are finished).
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from routeq.batch.mapreduce import (
    Piece,
    part_budget,
    piece_cache_key,
    plan_combines,
    split_document,
)
from routeq.batch.spec import SummaryTask, instructions, summary_messages
from routeq.config import ModelEndpoint, TierConfig
from routeq.errors import ProviderError
from routeq.judges import (
    Accept,
    Escalate,
    Fail,
    JudgeReplyError,
    NextStep,
    Verdict,
    after_call_failure,
    after_verdict,
    heuristic_failure,
    judge_messages,
    parse_judge_reply,
    summary_failure,
)
from routeq.judges.summary import strip_sim_label
from routeq.ledger import (
    ClaimedHop,
    HopKind,
    HopStatus,
    NewQuery,
    NextHop,
    QueryOutcome,
    QueryStatus,
)
from routeq.ledger.repository import FINAL_QUERY_STATUSES, QueryInput
from routeq.policies import QueryView, fit_to_context
from routeq.pricing import call_cost
from routeq.providers import Attempt, ChatRequest, ChatResponse, complete_with_retries
from routeq.secrets import scrub
from routeq.timing import attempt_lease_s, longest_pause_s
from routeq.tokens import count_message_tokens
from routeq.worker.runtime import Runtime
from routeq.worker.slots import SlotsUnavailableError


@dataclass(frozen=True)
class StepResult:
    """What the task must do after the step: publish hops, or retry the delivery later."""

    publish: list[NextHop] = field(default_factory=list)
    retry_in: float | None = None
    note: str = ""


# -- route ---------------------------------------------------------------------------------------


def route(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Ask the policy for a tier, fit it to the context window, create the first call hop."""
    hop, early = _claim(rt, query_id, seq)
    if hop is None:
        return early
    query = rt.ledger.query_input(query_id)
    task = _summary_task(query)
    decision = rt.policy.decide(
        QueryView(
            query.text,
            query.input_tokens,
            query.metadata,
            query.user,
            task="answer" if task is None else "summarize",
        )
    )
    values = {
        "tier": decision.tier,
        "reason": decision.reason,
        "score": decision.score,
        "details": {"policy": rt.policy.name, "rule": decision.rule},
    }
    if task is not None and task.role == "document":
        split = _split(rt, query, task, rt.settings.tier(decision.tier))
        if split is not None:
            combine, parts = split
            values["reason"] = f"{decision.reason}; {combine.reason}"
            return _finish(rt, hop, HopStatus.DONE, values, combine, None, parts)
    tier = fit_to_context(rt.settings, decision.tier, query.input_tokens)
    if tier is None:
        outcome = QueryOutcome(
            QueryStatus.FAILED,
            f"query of {query.input_tokens} tokens does not fit any tier's context window",
        )
        return _finish(rt, hop, HopStatus.DONE, values, None, outcome)
    reason = decision.reason
    if tier.name != decision.tier:
        reason += (
            f"; moved up to {tier.name}: {query.input_tokens} tokens exceed "
            f"{decision.tier}'s window"
        )
    values["reason"] = reason
    call = NextHop(
        query_id, seq + 1, HopKind.CALL, tier.name, tier.model, reason=f"routed: {reason}"
    )
    return _finish(rt, hop, HopStatus.DONE, values, call, None)


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
            cache_key=piece_cache_key(piece),
            batch_document_id=query.batch_document_id,
        )
        for piece in pieces
    ]


# -- call ----------------------------------------------------------------------------------------


def call(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Call the hop's tier; on an answer create the judge hop (or accept when judging is off).

    A slot of the tier's ``max_concurrency`` is taken first, shared by all of the tier's workers
    (``worker.slots``); when the tier is full the delivery waits and retries, without claiming
    the hop (so waiting does not count against the delivery cap)."""
    tier_name = rt.ledger.hop_tier(query_id, seq)
    if tier_name is None:
        return _call(rt, query_id, seq)
    tier = rt.settings.tier(tier_name)
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
    rt.call_slot = (tier.name, holder)
    try:
        return _call(rt, query_id, seq)
    finally:
        rt.call_slot = None
        with suppress(SlotsUnavailableError):  # the lease frees it anyway
            rt.slots.release(tier.name, holder)


def _call(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    hop, early = _claim(rt, query_id, seq)
    if hop is None:
        return early
    assert hop.tier is not None
    tier = rt.settings.tier(hop.tier)
    query = rt.ledger.query_input(query_id)
    task = _summary_task(query)
    if task is not None:
        messages = summary_messages(task, query.text, tier.system_prompt)
    else:
        messages = [{"role": "system", "content": tier.system_prompt}] if tier.system_prompt else []
        messages.append({"role": "user", "content": query.text})
    try:
        response, latency_ms = _complete(rt, hop, tier, messages)
    except ProviderError as error:
        step = _after_call_failure(rt, hop, tier.name, short_error(error), query.input_tokens)
        return _move_on(rt, hop, HopStatus.FAILED, {"error": short_error(error)}, step)
    values = _response_values(response, latency_ms)
    if not (rt.settings.judge.enabled and tier.judge):
        outcome = QueryOutcome(
            QueryStatus.DONE, f"judging is off for {tier.name}: answer accepted", answer_seq=seq
        )
        return _finish(rt, hop, HopStatus.DONE, values, None, outcome)
    judge_model = rt.settings.judge.model.model if rt.settings.judge.model else None
    judge = NextHop(
        query_id,
        seq + 1,
        HopKind.JUDGE,
        tier.name,
        judge_model,
        reason=f"judge the answer from {tier.name}",
    )
    return _finish(rt, hop, HopStatus.DONE, values, judge, None)


# -- judge ---------------------------------------------------------------------------------------


def judge(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Score the previous hop's answer; accept it, or escalate to the next tier."""
    hop, early = _claim(rt, query_id, seq)
    if hop is None:
        return early
    query = rt.ledger.query_input(query_id)
    answer = rt.ledger.call_output(query_id, seq - 1)
    assert answer.tier is not None
    tier = rt.settings.tier(answer.tier)
    verdict, values = _verdict(rt, hop, tier, query, answer.output, answer.finish_reason)
    values.update(
        passed=verdict.passed,
        reason=verdict.reason,
        score=verdict.score,
        details={"source": verdict.source},
    )
    step = after_verdict(rt.settings, tier.name, verdict, query.input_tokens)
    return _move_on(rt, hop, HopStatus.DONE, values, step, answer_seq=seq - 1)


def _verdict(
    rt: Runtime,
    hop: ClaimedHop,
    tier: TierConfig,
    query: QueryInput,
    answer: str | None,
    finish_reason: str | None,
) -> tuple[Verdict, dict[str, Any]]:
    """Heuristics first (free), the summary checks for summaries (free), then the LLM judge
    when one is configured."""
    task = _summary_task(query)
    question, rubric = query.text, rt.settings.judge.rubric
    # A document that mentions "function" does not ask for code: no code-block rule there.
    failure = heuristic_failure("" if task else question, answer, finish_reason)
    if failure is not None:
        return Verdict(False, failure, "heuristic"), {}
    if task is not None:
        condensing = task.role != "combine"  # partial summaries may be kept nearly whole
        failure = summary_failure(task.spec, query.text, answer or "", condensing=condensing)
        if failure is not None:
            return Verdict(False, f"summary check failed: {failure}", "summary-check"), {}
        question = f"{instructions(task)}\n\nText to summarize:\n{query.text}"
        rubric = rt.settings.judge.summary_rubric
    config = rt.settings.judge
    if config.model is None:
        return Verdict(True, "heuristic checks passed", "heuristic"), {}
    messages = judge_messages(rubric, question, answer or "")
    try:
        response, latency_ms = _complete(rt, hop, config.model, messages)
        scored = parse_judge_reply(response.content)
    except (ProviderError, JudgeReplyError) as error:
        accept = tier.judge_fail_mode == "open"
        what = "accepted (fail open)" if accept else "escalated (fail closed)"
        return Verdict(
            accept, f"judge failed, answer {what}: {short_error(error)}", "judge-error"
        ), {"error": short_error(error)}
    passed = scored.score >= config.pass_threshold
    reason = f"score {scored.score}/10 (pass >= {config.pass_threshold}): {scored.reason}"
    return Verdict(passed, reason, "llm", float(scored.score)), _response_values(
        response, latency_ms
    )


# -- combine (split documents) -------------------------------------------------------------------


def combine(rt: Runtime, query_id: uuid.UUID, seq: int) -> StepResult:
    """Once every piece of a split document is finished: combine the latest stage's summaries
    (creating the next stage's child queries), or close the document with the one summary left.
    Published by the last piece to finish; until then a delivery is a no-op."""
    children = rt.ledger.children(query_id)
    waiting = sum(child.status not in FINAL_QUERY_STATUSES for child in children)
    if waiting:
        return StepResult(note=f"waiting for {waiting} of {len(children)} pieces")
    hop, early = _claim(rt, query_id, seq)
    if hop is None:
        return early
    query = rt.ledger.query_input(query_id)
    task = _summary_task(query)
    assert task is not None, "only split summaries have combine hops"
    stage = max(child.task.get("stage", 0) for child in children)
    current = sorted(
        (child for child in children if child.task.get("stage", 0) == stage),
        key=lambda child: child.task.get("part") or 0,
    )
    what = "part" if stage == 0 else f"stage-{stage} combine"
    failed = [child for child in current if child.status != QueryStatus.DONE.value]
    if failed:
        first = failed[0]
        reason = (
            f"{len(failed)} of {len(current)} {what}s failed; {what} "
            f"{first.task.get('part')}: {first.reason}"
        )
        outcome = QueryOutcome(QueryStatus.FAILED, reason)
        return _finish(rt, hop, HopStatus.DONE, {"reason": reason}, None, outcome)
    if stage > 0 and len(current) == 1:
        reason = f"summary combined from {_parts_of(children)} parts in {stage} stage(s)"
        outcome = QueryOutcome(QueryStatus.DONE, reason, from_query=current[0].id)
        return _finish(rt, hop, HopStatus.DONE, {"reason": reason}, None, outcome)
    # Combines are routed like any query: size them for the tier with the least room.
    combine_task = SummaryTask(role="combine", part=1, parts=1, stage=stage + 1, spec=task.spec)
    budget = min(part_budget(rt.settings.summarize, combine_task, t) for t in rt.settings.tiers)
    try:
        partials = [strip_sim_label(child.answer or "") for child in current]
        pieces = plan_combines(partials, stage, budget, task.spec)
    except ValueError as error:
        outcome = QueryOutcome(QueryStatus.FAILED, f"cannot combine the summaries: {error}")
        return _finish(rt, hop, HopStatus.DONE, {"reason": str(error)}, None, outcome)
    reason = f"combine {len(current)} {what} summaries in {len(pieces)} call(s)"
    waiter = NextHop(
        query_id, seq + 1, HopKind.COMBINE, reason=f"wait for the stage-{stage + 1} combines"
    )
    return _finish(
        rt, hop, HopStatus.DONE, {"reason": reason}, waiter, None, _children(query, pieces)
    )


def _parts_of(children: list[Any]) -> int:
    return sum(1 for child in children if child.task.get("role") == "part")


# -- shared mechanics ----------------------------------------------------------------------------


def _claim(rt: Runtime, query_id: uuid.UUID, seq: int) -> tuple[ClaimedHop | None, StepResult]:
    """Claim the hop. Without a claim, say what to do instead (nothing, re-publish, or retry)."""
    settings = rt.settings
    claim = rt.ledger.claim(
        query_id,
        seq,
        lease_s=rt.claim_lease_s,  # every attempt renews it from there (``_complete``)
        max_deliveries=settings.retry.max_deliveries,
        worker=rt.node,
    )
    if claim.state == "claimed":
        rt.claimed = claim.hop  # what the task hands back if the step then fails
        return claim.hop, StepResult()
    if claim.state == "busy":
        return None, StepResult(retry_in=claim.retry_in, note="another delivery owns the hop")
    if claim.state == "finished":
        backlog = rt.ledger.backlog(query_id)
        return None, StepResult(publish=backlog, note="duplicate delivery")
    if claim.state == "exhausted":
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
        return StepResult(publish=rt.ledger.fail_query(hop.query_id, closing), note=closing)


def _move_on_after_failure(rt: Runtime, hop: ClaimedHop, reason: str) -> list[NextHop]:
    query = rt.ledger.query_input(hop.query_id)
    if hop.kind == HopKind.CALL.value and hop.tier is not None:
        step: NextStep = _after_call_failure(rt, hop, hop.tier, reason, query.input_tokens)
    elif hop.kind == HopKind.JUDGE.value:
        # The answer exists; a judge that cannot run is a judge failure, settled by the fail mode.
        answer = rt.ledger.call_output(hop.query_id, hop.seq - 1)
        assert answer.tier is not None
        tier = rt.settings.tier(answer.tier)
        verdict = Verdict(tier.judge_fail_mode == "open", reason, "judge-error")
        step = after_verdict(rt.settings, tier.name, verdict, query.input_tokens)
    else:
        step = Fail(reason)
    next_hop, outcome = _plan(rt, hop, step, answer_seq=hop.seq - 1)
    return rt.ledger.fail_exhausted(hop, outcome, next_hop)


def _after_call_failure(
    rt: Runtime, hop: ClaimedHop, tier: str, error: str, input_tokens: int
) -> NextStep:
    """Escalate past a failed call; at the top, fall back to the best earlier answer (one a
    judge failed) rather than failing a query that has an answer."""
    step = after_call_failure(rt.settings, tier, error, input_tokens)
    if isinstance(step, Fail):
        earlier = rt.ledger.last_answer_seq(hop.query_id, hop.seq)
        if earlier is not None:
            return Accept(f"{step.reason}; accepted the earlier answer of hop {earlier}", earlier)
    return step


def _complete(
    rt: Runtime, hop: ClaimedHop, endpoint: ModelEndpoint, messages: list[dict[str, str]]
) -> tuple[ChatResponse, int]:
    """Call a model with retries. Every attempt is on the ledger *before* it is sent (so a
    worker killed mid-call leaves an ``unknown`` request with its possible cost, never a paid
    call with no trace) and is completed with its cost after; each one renews the hop's lease
    for the attempt (and the pause) ahead."""
    latency: list[int] = []
    margin = rt.settings.worker.lease_margin_s
    request = ChatRequest(messages=messages, max_tokens=endpoint.max_output_tokens)
    max_cost = call_cost(endpoint, count_message_tokens(messages), endpoint.max_output_tokens)
    request_ids: dict[int, int] = {}

    def before(try_number: int, pause_s: float) -> ChatRequest:
        if try_number > 1 and rt.call_slot is not None and hop.kind == HopKind.CALL.value:
            # Renew the tier slot for the attempt ahead (the same holder: re-entrant).
            tier_name, holder = rt.call_slot
            with suppress(SlotsUnavailableError):
                rt.slots.acquire(
                    tier_name,
                    holder,
                    rt.settings.tier(tier_name).max_concurrency,
                    # through this attempt and the longest pause after it
                    attempt_lease_s(endpoint, longest_pause_s(rt.settings.retry), margin),
                )
        request_id = rt.ledger.begin_request(
            hop,
            try_number=try_number,
            model=endpoint.model,
            input_price=endpoint.input_price_per_mtok,
            output_price=endpoint.output_price_per_mtok,
            max_cost=max_cost,
            lease_s=attempt_lease_s(endpoint, 0.0, margin),
        )
        request_ids[try_number] = request_id
        return replace(request, request_id=str(request_id))

    def record(attempt: Attempt) -> None:
        response, error = attempt.response, attempt.error
        cost = Decimal(0)
        if response is not None:
            cost = call_cost(endpoint, response.input_tokens, response.output_tokens)
            latency.append(attempt.latency_ms)
        pause = attempt.pause_s
        rt.ledger.finish_request(
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
            lease_s=None if pause is None else attempt_lease_s(endpoint, pause, margin),
        )

    response = complete_with_retries(
        rt.provider(endpoint), request, rt.settings.retry, record, before_attempt=before
    )
    return response, latency[-1]


def _response_values(response: ChatResponse, latency_ms: int) -> dict[str, Any]:
    return {
        "output": response.content,
        "finish_reason": response.finish_reason,
        "input_tokens": response.input_tokens,
        "output_tokens": response.output_tokens,
        "tokens_estimated": response.tokens_estimated,
        "latency_ms": latency_ms,
    }


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
    values: dict[str, Any],
    step: NextStep,
    answer_seq: int | None = None,
) -> StepResult:
    next_hop, outcome = _plan(rt, hop, step, answer_seq)
    return _finish(rt, hop, status, values, next_hop, outcome)


def _finish(
    rt: Runtime,
    hop: ClaimedHop,
    status: HopStatus,
    values: dict[str, Any],
    next_hop: NextHop | None,
    outcome: QueryOutcome | None,
    children: list[NewQuery] | None = None,
) -> StepResult:
    finished = rt.ledger.finish_hop(
        hop,
        status=status,
        values=values,
        next_hop=next_hop,
        outcome=outcome,
        children=children or [],
    )
    if not finished.owned:
        return StepResult(note="superseded by a newer delivery; result discarded")
    return StepResult(publish=finished.publish)


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
        if last.status == HopStatus.FAILED.value:
            why = last.error or f"hop {last.seq} ({last.kind}) failed"
            return after_exhausted(rt, claimed, why)
        reason = (
            f"no step followed hop {last.seq} ({last.kind}, {last.status}); closed by the "
            "reconciler"
        )
    except Exception as error:
        reason = f"the reconciler could not read the query ({short_error(error)})"
    return StepResult(publish=rt.ledger.fail_query(query_id, reason), note=reason)
