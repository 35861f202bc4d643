"""``routeq replay``: what a candidate routing policy would have done with past traffic.

The ledger's answer queries of a period are pushed again through the real steps, in process
(``routeq.pipeline``), with the candidate policy, on a scratch database created beside the
ledger and dropped afterwards: the ledger itself is only read. Models are not called. A replay
transport (the HTTP edge, where a provider would be) answers each call from the ledger:

- a tier's call gets the answer that tier really gave that query, with its recorded tokens;
- the judge gets the reply it really gave that answer, so escalation follows the real
  verdicts;
- a call on a tier that never answered the query has no recorded answer. It is **flagged**:
  the transport answers with a placeholder at the query's tokens on other tiers, and the
  judge passes it (an optimistic guess, so an escalation it would have caused is missing).
  A report with many flagged queries says more about what was recorded than about the policy.

What the replay costs is priced at the configured tiers' prices; what really happened is as
the ledger recorded it. Replaying the policy that did route the traffic gives back what really
happened (the integration test checks it), which is what makes the difference worth reading.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from rich.table import Table
from sqlalchemy import Engine, create_engine, make_url, text

from routeq.config import Settings, component_config
from routeq.ledger import Ledger, make_engine
from routeq.ledger.migrate import upgrade
from routeq.ledger.sql import named
from routeq.pipeline import InProcessPipeline
from routeq.policies.registry import POLICIES
from routeq.records import NewQuery, QueryRole
from routeq.tokens import count_message_tokens
from routeq.worker.guard import OpenGuard

PLACEHOLDER = "[routeq replay: this tier never answered this query]"
_JUDGE_ANSWER = "Answer to grade:\n"
_JUDGE_END = "\n\nYour verdict (JSON):"


@dataclass(frozen=True)
class RecordedCall:
    """A done call of a past query, and the reply the LLM judge gave its answer (if any)."""

    output: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    judge_reply: str | None
    judge_input_tokens: int
    judge_output_tokens: int


@dataclass
class PastQuery:
    """An answer query of the ledger, with what happened to it."""

    id: uuid.UUID
    text: str
    input_tokens: int
    messages: list[dict[str, str]] | None
    params: dict[str, Any] | None
    metadata: dict[str, Any]
    user: str | None
    cost: Decimal
    called: list[str]  # tiers called, in order (gated calls excluded)
    escalations: int
    calls: dict[str, RecordedCall] = field(default_factory=dict)  # by tier


def read_past_queries(
    engine: Engine, since: datetime | None, until: datetime | None, limit: int | None
) -> list[PastQuery]:
    """The finished answer queries submitted in [since, until), oldest first, with their
    recorded calls. Documents and their pieces, shadows and re-runs are not replayed."""
    params = {"since": since, "until": until, "limit": limit}
    with engine.connect() as conn:
        rows = conn.execute(named("replay_queries"), params).all()
    return [
        PastQuery(
            id=row.id,
            text=row.text,
            input_tokens=int(row.input_tokens),
            messages=row.messages,
            params=row.params,
            metadata=dict(row.metadata or {}),
            user=row.user_id,
            cost=Decimal(row.total_cost),
            called=list(row.called or []),
            escalations=int(row.escalations),
            calls={call["tier"]: _recorded(call) for call in row.calls or []},
        )
        for row in rows
    ]


def _recorded(call: dict[str, Any]) -> RecordedCall:
    return RecordedCall(
        call["output"] or "",
        call["finish_reason"],
        int(call["input_tokens"] or 0),
        int(call["output_tokens"] or 0),
        call["judge_reply"],
        int(call["judge_input_tokens"] or 0),
        int(call["judge_output_tokens"] or 0),
    )


class ReplayTransport(httpx.BaseTransport):
    """Answers the pipeline's model calls from the ledger, in OpenAI's chat format."""

    def __init__(self, settings: Settings, past: Sequence[PastQuery]) -> None:
        self._tier_of = {tier.model: tier.name for tier in settings.tiers}
        self._judge_model = settings.judge.model.model if settings.judge.model else None
        self._threshold = settings.judge.pass_threshold
        # a call's last user turn is its query's text (a chat query's text is its last turn)
        self._answers = {
            (tier, query.text): call for query in past for tier, call in query.calls.items()
        }
        self._by_prompt = {query.text: query for query in past}
        self._judged: dict[str, RecordedCall] = {}
        self.flagged: set[tuple[str, str]] = set()  # (prompt, tier) with no recorded answer
        self.unanswerable = 0  # requests the ledger has nothing for (a feature call, say)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        model, messages = body.get("model"), body.get("messages") or []
        tier = self._tier_of.get(model)
        if tier is not None:
            return self._answer(tier, messages)
        if model == self._judge_model:
            return self._judge(messages)
        self.unanswerable += 1
        return httpx.Response(500, json={"error": {"message": "replay: nothing recorded"}})

    def _answer(self, tier: str, messages: list[dict[str, str]]) -> httpx.Response:
        prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        call = self._answers.get((tier, prompt))
        if call is not None:
            self._judged[call.output] = call
            return _reply(call.output, call.finish_reason, call.input_tokens, call.output_tokens)
        self.flagged.add((prompt, tier))
        query = self._by_prompt.get(prompt)
        known = list(query.calls.values()) if query is not None else []
        input_tokens = known[0].input_tokens if known else count_message_tokens(messages)
        output_tokens = max((c.output_tokens for c in known), default=100)
        return _reply(PLACEHOLDER, "stop", input_tokens, output_tokens)

    def _judge(self, messages: list[dict[str, str]]) -> httpx.Response:
        content = messages[-1]["content"] if messages else ""
        answer = content.partition(_JUDGE_ANSWER)[2].rpartition(_JUDGE_END)[0]
        if PLACEHOLDER in answer:
            verdict = {"score": self._threshold, "reason": "replay: no recorded answer; assumed"}
            return _reply(json.dumps(verdict), "stop", count_message_tokens(messages), 20)
        call = self._judged.get(answer)
        if call is None:  # a note between the answer and the request (a prompt cut to fit)
            call = next((c for text, c in self._judged.items() if text and text in content), None)
        if call is None or call.judge_reply is None:
            # no recorded reply (the judge failed then): fail again, the fail mode decides
            return httpx.Response(500, json={"error": {"message": "replay: no recorded verdict"}})
        return _reply(call.judge_reply, "stop", call.judge_input_tokens, call.judge_output_tokens)


def _reply(
    content: str, finish: str | None, input_tokens: int, output_tokens: int
) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [
                {
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish or "stop",
                }
            ],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens},
        },
    )


@contextmanager
def scratch_database(ledger_url: str) -> Iterator[str]:
    """A new, migrated database on the ledger's server for the replay to write, dropped after.
    Needs the CREATEDB privilege; ``routeq replay --scratch-url`` names one instead."""
    url = make_url(ledger_url)
    name = f"{url.database or 'routeq'}_replay_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        scratch = url.set(database=name).render_as_string(hide_password=False)
        upgrade(scratch)
        yield scratch
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class Figures:
    """What a set of queries cost and how it was routed."""

    queries: int
    cost: Decimal
    top_tier_share: float  # queries that called the top tier
    routed: dict[str, float]  # share of queries by the tier first called
    escalation_rate: float  # queries that climbed at least one tier
    escalations: int


@dataclass(frozen=True)
class ReplayResult:
    policy: str
    actual: Figures
    replayed: Figures
    flagged_queries: int  # queries with at least one answer the ledger did not have
    flagged_calls: int
    unanswerable_requests: int


def candidate_settings(
    settings: Settings, policy: str, options: dict[str, Any], default_tier: str | None
) -> Settings:
    """The settings to replay with: the candidate policy section (validated by its config
    class), no exploration and no shadows, so the replay is the policy's alone."""
    section = component_config("policy", {"name": policy, **options})
    problems = section.problems(settings.tier_names)
    if problems:
        raise ValueError("; ".join(problems))
    if default_tier is not None and default_tier not in settings.tier_names:
        raise ValueError(f"unknown tier {default_tier!r}; known: {', '.join(settings.tier_names)}")
    routing = settings.routing.model_copy(
        update={
            "policy": section,
            "explore_share": 0.0,
            "default_tier": default_tier or settings.routing.default_tier,
        }
    )
    shadow = settings.shadow.model_copy(update={"enabled": False})
    return settings.model_copy(update={"routing": routing, "shadow": shadow})


def replay_past(
    settings: Settings,
    scratch_url: str,
    past: Sequence[PastQuery],
) -> ReplayResult:
    """Run ``past`` through the steps with ``settings`` (the candidate's) on the scratch
    database, answered by the replay transport; compare with what happened."""
    transport = ReplayTransport(settings, past)
    engine = make_engine(scratch_url)
    try:
        with httpx.Client(transport=transport) as http:
            policy = POLICIES.build(settings.routing.policy, settings)
            # Recorded answers reach no provider: nothing to pace or to break.
            with InProcessPipeline(
                settings, Ledger(engine), policy=policy, http=http, guard=OpenGuard()
            ) as runner:
                runner.submit([_again(query) for query in past])
                runner.run()
        with engine.connect() as conn:
            rows = conn.execute(named("replay_outcomes")).all()
    finally:
        engine.dispose()
    top = settings.top_tier.name
    flagged_prompts = {prompt for prompt, _ in transport.flagged}
    return ReplayResult(
        policy=settings.routing.policy.name,
        actual=_figures([(q.cost, q.called, q.escalations) for q in past], top),
        replayed=_figures(
            [(Decimal(r.cost), list(r.called or []), int(r.escalations)) for r in rows], top
        ),
        flagged_queries=sum(1 for q in past if q.text in flagged_prompts),
        flagged_calls=len(transport.flagged),
        unanswerable_requests=transport.unanswerable,
    )


def _again(query: PastQuery) -> NewQuery:
    return NewQuery(
        query.text,
        query.input_tokens,
        metadata=query.metadata,
        user=query.user,
        messages=query.messages,
        params=query.params,
        role=QueryRole.ANSWER,
        idempotency_key=f"replay:{query.id}",
    )


def _figures(rows: Sequence[tuple[Decimal, list[str], int]], top: str) -> Figures:
    n = len(rows)
    first: dict[str, int] = {}
    for _, called, _ in rows:
        if called:
            first[called[0]] = first.get(called[0], 0) + 1
    return Figures(
        queries=n,
        cost=sum((cost for cost, _, _ in rows), Decimal(0)),
        top_tier_share=sum(top in called for _, called, _ in rows) / n if n else 0.0,
        routed={tier: count / n for tier, count in sorted(first.items())},
        escalation_rate=sum(e > 0 for _, _, e in rows) / n if n else 0.0,
        escalations=sum(e for _, _, e in rows),
    )


def as_table(result: ReplayResult, top_tier: str) -> Table:
    """What happened next to what the candidate would have done."""
    table = Table(title=f"replay of {result.actual.queries} queries with {result.policy}")
    table.add_column("")
    table.add_column("what happened", justify="right")
    table.add_column(result.policy, justify="right")
    actual, again = result.actual, result.replayed

    def per_query(figures: Figures) -> str:
        return f"${figures.cost / figures.queries:.6f}" if figures.queries else "-"

    rows = [
        ("queries", f"{actual.queries:,}", f"{again.queries:,}"),
        ("cost", f"${actual.cost:.6f}", f"${again.cost:.6f}"),
        ("$/query", per_query(actual), per_query(again)),
        (f"called {top_tier}", f"{actual.top_tier_share:.1%}", f"{again.top_tier_share:.1%}"),
        ("escalated", f"{actual.escalation_rate:.1%}", f"{again.escalation_rate:.1%}"),
        ("escalations", f"{actual.escalations:,}", f"{again.escalations:,}"),
    ]
    for tier in sorted(set(actual.routed) | set(again.routed)):
        rows.append(
            (
                f"routed to {tier}",
                f"{actual.routed.get(tier, 0):.1%}",
                f"{again.routed.get(tier, 0):.1%}",
            )
        )
    rows.append(("answers not on the ledger", "-", f"{result.flagged_queries:,} queries"))
    for row in rows:
        table.add_row(*row)
    return table
