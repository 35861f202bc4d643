"""The producer API: submit queries, wait for results, read status.

``submit`` writes the query and its route hop in one transaction, then publishes the route task
after the commit: a crash between the two leaves a queued hop in Postgres (the reconciler's job),
never a message about a query that does not exist.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routeq.batch.ingest import Document, collect
from routeq.batch.submit import (
    check_batch_name,
    default_batch_name,
    document_query,
    documents_from_records,
    metadata_problem,
    prepare,
)
from routeq.chat import ChatInput, chat_input, check_storable, generation_params
from routeq.config import Settings, load_settings
from routeq.errors import ConfigError, InvalidQueryError
from routeq.ledger import HopKind, HopView, Ledger, NewQuery, NextHop, make_engine
from routeq.ledger.batches import BatchInfo, BatchProgress, BatchStore, DocumentResult
from routeq.ledger.notify import ClosedQueries
from routeq.policies.ladder import fits
from routeq.privacy import private_query
from routeq.queue.app import create_app
from routeq.queue.publisher import Publisher
from routeq.records import FINAL_QUERY_STATUSES
from routeq.summary_spec import SummarySpec
from routeq.tokens import count_message_tokens, count_tokens

if TYPE_CHECKING:
    from contextlib import ExitStack

    from routeq.local import LocalStack

_MAX_KEY_LENGTH = 200
_BATCH_GROUP = 50  # documents registered per transaction: progress survives an interruption


@dataclass(frozen=True)
class Result:
    """A finished (or still running) query as the ledger sees it."""

    query_id: uuid.UUID
    status: str
    answer: str | None
    final_tier: str | None
    final_model: str | None
    reason: str | None
    total_cost: Decimal
    hops: list[HopView]

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def tier_path(self) -> list[str]:
        """The tiers that were called, in order (e.g. ['cheap', 'mid']); a call a hook denied
        or moved before it was made (``details.gate``) is not one."""
        return [
            hop.tier
            for hop in self.hops
            if hop.kind == HopKind.CALL.value and hop.tier and "gate" not in hop.details
        ]

    @property
    def escalations(self) -> int:
        """Calls on a tier none of the earlier calls used: the definition of the
        ``escalations`` view (the first call is routing)."""
        seen: set[str] = set()
        moves = 0
        for tier in self.tier_path:
            moves += bool(seen) and tier not in seen
            seen.add(tier)
        return moves


class QueryHandle:
    """A submitted query. ``wait`` reads the ledger, the source of truth, not the broker."""

    def __init__(self, client: Client, query_id: uuid.UUID, created: bool) -> None:
        self._client = client
        self.query_id = query_id
        self.created = created

    def wait(self, timeout: float = 60.0, poll_interval: float = 5.0) -> Result:
        """Block until the query is done or failed; raise TimeoutError after ``timeout`` s.

        Woken by the ledger's notification when the query closes (``ledger.notify``), so the
        answer is back the moment it is committed; the state is also re-read every
        ``poll_interval`` seconds, in case a notification was lost with a connection."""
        deadline = time.monotonic() + timeout
        with ClosedQueries(self._client.ledger.engine) as closed:
            while True:
                result = self._client.status(self.query_id)
                if result.status in FINAL_QUERY_STATUSES:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"query {self.query_id} still {result.status} after {timeout:g}s; are "
                        "workers running for every queue (`routeq worker`)?"
                    )
                closed.wait(self.query_id, min(left, poll_interval))

    def __repr__(self) -> str:
        return f"QueryHandle({self.query_id})"


@dataclass(frozen=True)
class FeedbackGiven:
    """What ``Client.feedback`` recorded: the rating's id, the tier it rated, and the re-run it
    bought (None for a thumbs-up, or a thumbs-down on the top tier's answer)."""

    feedback_id: int
    query_id: uuid.UUID
    answered_on: str | None
    rerun: QueryHandle | None


class BatchHandle:
    """A submitted batch. Progress and results come from the ledger, not from this process."""

    def __init__(
        self,
        client: Client,
        info: BatchInfo,
        actions: dict[str, int],
        interrupted: bool,
        spent_at_start: Decimal | None = None,
    ) -> None:
        self._client = client
        self.id = info.id
        self.name = info.name
        self.actions = actions  # submitted / retried / kept / reused / rejected counts
        self.interrupted = interrupted  # registration stopped early; re-run to add the rest
        self.spent_at_start = spent_at_start  # the batch's spend before this submission

    def progress(self) -> BatchProgress:
        return self._client.batches.progress(self.id)

    def results(self) -> list[DocumentResult]:
        return self._client.batches.results(self.id)

    def wait(self, timeout: float = 600.0, poll_interval: float = 0.25) -> BatchProgress:
        """Block until every accepted document is done or failed."""
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress()
            if progress.complete:
                return progress
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"batch {self.name} ({self.id}): {progress.finished} of {progress.accepted} "
                    f"documents finished after {timeout:g}s; are workers running?"
                )
            time.sleep(poll_interval)

    def __repr__(self) -> str:
        return f"BatchHandle({self.name}, {self.id})"


class Client:
    """Submit queries to routeq and read their outcome.

    ``Client()`` connects to a configured routeq (``database_url`` and ``broker_url``, from
    routeq.toml, ``ROUTEQ_*`` variables or the settings given) and starts nothing: producers
    run beside a deployment's workers. ``Client.local()`` is the embedded default on this
    machine, which it starts and owns until it is closed.

    >>> with Client() as client:               # settings from routeq.toml / ROUTEQ_* variables
    ...     client.submit("What is 2 + 2?").wait(timeout=30).answer
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        missing = [
            name
            for name, value in (
                ("database_url", self.settings.database_url),
                ("broker_url", self.settings.broker_url),
            )
            if value is None
        ]
        if missing:
            variables = " and ".join(f"ROUTEQ_{name.upper()}" for name in missing)
            raise ConfigError(
                f"{' and '.join(missing)} not configured: Client() connects to a running routeq "
                f"and starts nothing. Set {variables} (or {' and '.join(missing)} in "
                "routeq.toml), or use `with Client.local() as client:` for the embedded default "
                "on this machine (its own Postgres, Redis, workers and simulated models, "
                "stopped when the client closes)"
            )
        assert self.settings.database_url is not None and self.settings.broker_url is not None
        self.database_url = self.settings.database_url
        self.broker_url = self.settings.broker_url
        self.ledger = Ledger(make_engine(self.database_url))
        self.batches = BatchStore(self.ledger.engine)
        self._app = create_app(self.settings, self.broker_url)
        self._publisher = Publisher(self._app, self.settings)
        self.stack: LocalStack | None = None  # what Client.local() started for this client
        self._owned: ExitStack | None = None

    @classmethod
    def local(cls, settings: Settings | None = None, *, workers: int | None = None) -> Client:
        """A client on the local stack, which it owns: the embedded Postgres and Redis for
        whatever ``settings`` leave unconfigured, worker groups and beat, and a simulated model
        server for the tiers on the default simulator URL (see ``routeq.local``). Close it
        (or use it in ``with``) to stop what it started; the ledger stays for the next run.

        ``workers``: processes per worker group; by default 2 on the embedded broker and none
        on a configured one (whose workers are deployed).
        """
        from contextlib import ExitStack

        from routeq.local import local_stack

        owned = ExitStack()
        try:
            stack = owned.enter_context(local_stack(settings or load_settings(), workers=workers))
            client = cls(stack.settings)
        except BaseException:
            owned.close()
            raise
        client.stack = stack
        client._owned = owned
        return client

    @property
    def started(self) -> list[str]:
        """What ``Client.local()`` started for this client (empty for ``Client()``)."""
        return list(self.stack.started) if self.stack is not None else []

    # -- submitting ------------------------------------------------------------------------------

    def submit(
        self,
        text: str | None = None,
        *,
        messages: Sequence[Mapping[str, str]] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
        api_key_id: str | None = None,
    ) -> QueryHandle:
        """Enqueue one query: a ``text``, or a chat's ``messages`` (``{"role", "content"}``
        turns, routed on the last user turn), with optional generation parameters. With an
        ``idempotency_key`` a resubmission returns the original. ``api_key_id``: the id of the
        API key the query came with (a gateway's; never the key), for budgets by key."""
        item: dict[str, Any] = {
            "metadata": metadata,
            "user": user,
            "api_key_id": api_key_id,
            "idempotency_key": idempotency_key,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        item.update({"messages": messages} if messages is not None else {"text": text})
        return self.submit_many([item])[0]

    def submit_many(self, items: Iterable[str | Mapping[str, Any]]) -> list[QueryHandle]:
        """Enqueue many queries in one transaction: all are accepted, or none (bad input raises
        before anything is written)."""
        prepared = [self._validate(index, item) for index, item in enumerate(items)]
        submitted = self.ledger.submit(prepared)
        routes = [entry.query_id for entry in submitted if entry.route_queued]
        if routes:
            self._publisher.publish_routes(routes)
        return [QueryHandle(self, entry.query_id, entry.created) for entry in submitted]

    def _validate(self, index: int, item: str | Mapping[str, Any]) -> NewQuery:
        """The ledger row for one submitted item, or InvalidQueryError saying what to fix.

        Everything a worker would choke on later is refused here, before anything is written:
        a bad query must fail its producer once, not crash workers on every redelivery.
        """
        where = f"query #{index}" if index else "query"
        if not isinstance(item, str | Mapping):
            raise InvalidQueryError(
                f"{where}: expected a string or a mapping with 'text', got {type(item).__name__}"
            )
        fields: Mapping[str, Any] = {"text": item} if isinstance(item, str) else item
        chat: ChatInput | None = None
        if fields.get("messages") is not None:
            if fields.get("text") is not None:
                raise InvalidQueryError(f"{where}: give text or messages, not both")
            chat = chat_input(
                where, fields["messages"], fields.get("temperature"), fields.get("max_tokens")
            )
        text = chat.text if chat is not None else fields.get("text")
        if not isinstance(text, str):
            raise InvalidQueryError(f"{where}: text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InvalidQueryError(f"{where}: text is empty; send the question to route")
        check_storable(f"{where}: text", text)
        chars = chat.chars if chat is not None else len(text)
        if chars > self.settings.max_query_chars:
            raise InvalidQueryError(
                f"{where}: {chars:,} characters exceeds max_query_chars "
                f"({self.settings.max_query_chars:,}); split the text or raise the limit"
            )
        tokens = count_message_tokens(chat.messages) if chat is not None else count_tokens(text)
        params = (
            chat.params
            if chat is not None
            else generation_params(where, fields.get("temperature"), fields.get("max_tokens"))
        )
        if not any(fits(tier, tokens) for tier in self.settings.tiers):
            largest = max(self.settings.tiers, key=lambda t: t.context_window)
            raise InvalidQueryError(
                f"{where}: {tokens:,} tokens does not fit any tier's context window (largest: "
                f"{largest.name}, {largest.context_window:,} tokens including "
                f"{largest.max_output_tokens:,} for the answer); shorten or split the text"
            )
        raw_metadata = fields.get("metadata") or {}
        if not isinstance(raw_metadata, Mapping):
            raise InvalidQueryError(
                f"{where}: metadata must be a mapping (a JSON object), got "
                f"{type(raw_metadata).__name__}"
            )
        metadata = dict(raw_metadata)
        # Depth and size limits: routeq.batch.submit.MAX_METADATA_DEPTH / MAX_METADATA_BYTES.
        problem = metadata_problem(metadata)
        if problem is not None:
            raise InvalidQueryError(f"{where}: {problem}")
        key = fields.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY_LENGTH):
            raise InvalidQueryError(
                f"{where}: idempotency_key must be a non-empty string of at most "
                f"{_MAX_KEY_LENGTH} characters"
            )
        user = fields.get("user")
        if user is not None and not 0 < len(str(user)) <= _MAX_KEY_LENGTH:
            raise InvalidQueryError(
                f"{where}: user must be a non-empty string of at most {_MAX_KEY_LENGTH} characters"
            )
        key_id = fields.get("api_key_id")
        if key_id is not None and not (
            isinstance(key_id, str) and 0 < len(key_id) <= _MAX_KEY_LENGTH and key_id.isprintable()
        ):
            raise InvalidQueryError(
                f"{where}: api_key_id must be a printable string of at most {_MAX_KEY_LENGTH} "
                "characters (the key's id, not the key)"
            )
        query = NewQuery(
            text=text,
            input_tokens=tokens,
            metadata=metadata,
            user=None if user is None else str(user),
            idempotency_key=key,
            messages=chat.messages if chat is not None else None,
            params=params,
            api_key_id=key_id,
        )
        return private_query(self.settings.privacy, query)

    # -- batches ---------------------------------------------------------------------------------

    def submit_batch(
        self,
        inputs: Sequence[str | Path] = (),
        *,
        documents: Iterable[Document | Mapping[str, Any]] = (),
        name: str | None = None,
        spec: SummarySpec | None = None,
        user: str | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> BatchHandle:
        """Summarise documents as a batch; re-submitting the same batch resumes it.

        ``inputs`` are paths, directories or glob patterns (see ``routeq.batch.collect``);
        ``documents`` are ``Document`` objects or ``{"id", "text", "metadata"}`` mappings.
        Every input gets a row, rejected ones with the reason. Documents already summarised
        (same text, same spec, in any batch) are reused and cost nothing; failed ones are
        retried. Registration commits in small groups and checks ``should_stop`` between
        them, so an interrupted producer loses nothing: running the same call again adds
        the rest.
        """
        spec = spec or self.settings.summarize.spec
        records = documents_from_records(documents)
        docs = (collect(list(inputs)) if inputs else []) + records
        if not docs:
            raise InvalidQueryError("nothing to summarise: pass paths or documents")
        name = check_batch_name(name or default_batch_name(list(inputs), spec, records))
        info = self.batches.open(name, spec.model_dump(mode="json"))
        spent_at_start = self.batches.spent(info.id)
        prepared = prepare(docs, self.settings.max_query_chars)
        make_document = document_query(spec, user)

        def make_query(item: Any, batch_document_id: int) -> NewQuery:
            return private_query(self.settings.privacy, make_document(item, batch_document_id))

        actions: dict[str, int] = {}
        interrupted = False
        for start in range(0, len(prepared), _BATCH_GROUP):
            if should_stop is not None and should_stop():
                interrupted = True
                break
            registration = self.batches.register(
                info.id, prepared[start : start + _BATCH_GROUP], make_query
            )
            for hop in registration.publish:
                self._publisher.publish(hop)
            for entry in registration.documents:
                actions[entry.action] = actions.get(entry.action, 0) + 1
        return BatchHandle(self, info, actions, interrupted, spent_at_start)

    def batch(self, ref: str | uuid.UUID) -> BatchHandle:
        """A batch by id or name, to follow it or read its results."""
        return BatchHandle(self, self.batches.find(ref), {}, interrupted=False)

    # -- feedback --------------------------------------------------------------------------------

    def feedback(
        self, query_id: uuid.UUID | str, *, thumbs_down: bool, comment: str | None = None
    ) -> FeedbackGiven:
        """Rate a finished answer. A thumbs-down on an answer below the top tier re-runs the
        query one tier up (once per query): ``rerun`` is its handle, to ``wait()`` on. The
        original answer and its cost stay on the ledger as they were."""
        from routeq.ledger.feedback import FeedbackStore

        recorded = FeedbackStore(self.ledger.engine).record(
            _as_uuid(query_id),
            thumbs_down=thumbs_down,
            comment=comment,
            tier_names=self.settings.tier_names,
        )
        if recorded.publish and recorded.rerun_id is not None:
            self._publisher.publish(NextHop(recorded.rerun_id, 1, HopKind.ROUTE))
        rerun = (
            None
            if recorded.rerun_id is None
            else QueryHandle(self, recorded.rerun_id, recorded.rerun_created)
        )
        return FeedbackGiven(recorded.feedback_id, recorded.query_id, recorded.answered_on, rerun)

    # -- reading ---------------------------------------------------------------------------------

    def status(self, query_id: uuid.UUID | str) -> Result:
        """The query's current state and hops."""
        view = self.ledger.view(_as_uuid(query_id))
        return Result(
            query_id=view.id,
            status=view.status,
            answer=view.answer,
            final_tier=view.final_tier,
            final_model=view.final_model,
            reason=view.final_reason,
            total_cost=view.total_cost,
            hops=view.hops,
        )

    def handle(self, query_id: uuid.UUID | str) -> QueryHandle:
        return QueryHandle(self, _as_uuid(query_id), created=False)

    def close(self) -> None:
        """Release the connections; a ``Client.local()`` also stops what it started. Safe to
        call more than once."""
        self.ledger.engine.dispose()
        self._app.close()
        owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _as_uuid(query_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(query_id, uuid.UUID):
        return query_id
    try:
        return uuid.UUID(query_id)
    except ValueError:
        raise InvalidQueryError(f"{query_id!r} is not a query id (expected a UUID)") from None
