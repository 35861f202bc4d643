"""The Celery tasks: thin wrappers that run one step and publish what it returns, after commit.

Arguments are ids only: ``(query_id, seq)``, or for ``route_many`` a list of query ids.
Celery's retries are unlimited here (``max_retries=None`` on the task itself: on
``task.retry`` the same value would mean "the task's default", which is 3): what bounds the
work is the ledger's delivery cap, which ends a hop that keeps failing and moves its query on.
A step that finds its hop owned by a live delivery asks to be retried when the owner's lease
ends; that deferral is not a provider retry.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery, Task
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init

from routeq.errors import DeliverySupersededError
from routeq.queue.app import (
    CALL_TASK,
    COMBINE_TASK,
    JUDGE_TASK,
    RECONCILE_TASK,
    ROUTE_MANY_TASK,
    ROUTE_TASK,
)
from routeq.queue.publisher import REPUBLISHED_HEADER, TIER_HEADER
from routeq.records import HopKind, NextHop
from routeq.secrets import install_log_filter, scrub
from routeq.timing import MAX_ERROR_COUNTDOWN_S
from routeq.worker import steps
from routeq.worker.reconcile import reconcile
from routeq.worker.runtime import Runtime, get_runtime, reset_runtime

log = logging.getLogger("routeq.worker")

Step = Callable[[Runtime, uuid.UUID, int], steps.StepResult]


@dataclass(frozen=True)
class _Retry:
    """A delivery to try again in ``countdown`` seconds; ``error``: why, when a step failed."""

    countdown: float
    error: str | None = None


def _run(task: Task, step: Step, query_id: str, seq: int) -> None:
    retry = _deliver(task, step, query_id, seq, first=_first_delivery(task))
    if retry is None:
        return
    if retry.error is None:
        raise task.retry(countdown=retry.countdown)
    # Celery keeps the retry's exception in its events (and Flower): a scrubbed stand-in.
    raise task.retry(exc=RuntimeError(retry.error), countdown=retry.countdown) from None


def _deliver(task: Task, step: Step, query_id: str, seq: int, *, first: bool) -> _Retry | None:
    """Run one hop's step and publish what it returns; a retry when it must run again."""
    rt = get_runtime()
    rt.node, rt.claimed, rt.unrecorded = task.request.hostname, None, []
    rt.hold_claim, rt.after_publish = first, []
    try:
        return _run_step(task, step, query_id, seq, rt)
    finally:
        steps.after_publish(rt)


def _run_step(task: Task, step: Step, query_id: str, seq: int, rt: Runtime) -> _Retry | None:
    """The step, then what it asks for: its hops published, or a retry."""
    try:
        try:
            result = step(rt, uuid.UUID(query_id), seq)
        finally:
            _end_delivery(rt, task.name, query_id, seq)
    except DeliverySupersededError as superseded:
        # A newer delivery took the hop over: it does the work; this message is done.
        log.warning("%s query=%s seq=%s: %s", task.name, query_id, seq, superseded)
        return None
    except Exception as error:
        # Not a provider error (those are handled in the step): a bug, the database going away,
        # a soft time limit. With acks_late Celery would ack and forget the message, leaving the
        # hop running; instead hand the hop back (if this delivery claimed it) and retry the
        # delivery. The ledger's delivery cap ends a hop that fails every time.
        reason = steps.short_error(error)
        log.error("%s query=%s seq=%s failed: %s", task.name, query_id, seq, reason)
        if rt.claimed is not None:
            try:
                rt.ledger.release(rt.claimed)
            except Exception as release_error:
                log.error(
                    "could not release hop query=%s seq=%s: %s",
                    query_id,
                    seq,
                    type(release_error).__name__,
                )
        return _Retry(min(MAX_ERROR_COUNTDOWN_S, 0.5 * 2**task.request.retries), reason)
    if result.retry_in is not None:
        log.info(
            "%s query=%s seq=%s busy; retry in %.1fs", task.name, query_id, seq, result.retry_in
        )
        return _Retry(result.retry_in)
    if result.note:
        log.info("%s query=%s seq=%s: %s", task.name, query_id, seq, scrub(result.note))
    for hop in result.publish:
        rt.publisher.publish(hop)
    return None


def _route_many(task: Task, query_ids: list[str]) -> None:
    """Route the queries of a bulk submission, one message for many (``Publisher.publish_routes``).

    Each query is routed as its own ``route`` message would be. One that must be tried again
    goes on as its own route message, republished (its claim counted at once). Past half the
    task's soft time limit the rest go on as a new message, so a chunk never runs into the
    limit (nor stays unacknowledged long enough for Redis to deliver it twice). A chunk
    delivered again (its worker died, or publishing failed) is split into one republished
    message per query: a query that kills its worker then holds up no other."""
    rt = get_runtime()
    ids = _hop_ids(query_ids)
    if not _first_delivery(task):
        for query_id in ids:
            rt.publisher.publish(NextHop(query_id, 1, HopKind.ROUTE), republished=True)
        return
    deadline = time.monotonic() + rt.settings.time_limits.soft_s / 2
    for index, query_id in enumerate(ids):
        if index and time.monotonic() > deadline:
            rt.publisher.publish_routes(ids[index:])
            return
        try:
            retry = _deliver(task, steps.route, str(query_id), 1, first=True)
            if retry is not None:
                hop = NextHop(query_id, 1, HopKind.ROUTE)
                rt.publisher.publish(hop, countdown=retry.countdown, republished=True)
        except Exception as error:
            # Publishing failed (Redis going away, a soft time limit): this query and the rest
            # are retried as one message, which the retry splits up (a claim turns away what
            # was already done).
            log.error("%s: %d queries left: %s", task.name, len(ids) - index, type(error).__name__)
            rest = [str(query) for query in ids[index:]]
            raise task.retry(args=[rest], countdown=0.5) from None


def _hop_ids(query_ids: list[str]) -> list[uuid.UUID]:
    """The ids of a bulk route message; one that is not an id (routeq never sends one) is
    logged and dropped rather than retried for ever."""
    ids = []
    for query_id in query_ids:
        try:
            ids.append(uuid.UUID(str(query_id)))
        except ValueError:
            log.error("routeq.route_many: dropped %r, which is not a query id", query_id[:40])
    return ids


def _first_delivery(task: Task) -> bool:
    """Whether this is the message's first delivery, which may hold its claim open
    (``ledger.held``): not a retry, not restored by Redis after a lost worker (kombu marks
    those ``redelivered``), not republished by the reconciler."""
    request = task.request
    if request.retries or (request.delivery_info or {}).get("redelivered"):
        return False
    return not (request.get("redelivered") or request.get(REPUBLISHED_HEADER))


def _end_delivery(rt: Runtime, name: str, query_id: str, seq: int) -> None:
    """Commit a held claim and write the calls the step paid for but did not record with its
    hop's finish (``steps.end_delivery``). A failure here leaves those ``pending``, and the
    next claim marks them ``unknown`` (possibly paid)."""
    try:
        steps.end_delivery(rt)
    except Exception as error:
        log.error(
            "%s query=%s seq=%s: could not end its delivery on the ledger: %s",
            name,
            query_id,
            seq,
            type(error).__name__,
        )


def register_tasks(app: Celery) -> None:
    """Attach route, call, judge, combine and the reconciler to ``app``."""

    @app.task(name=ROUTE_TASK, bind=True, max_retries=None)
    def route(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.route, query_id, seq)

    @app.task(name=ROUTE_MANY_TASK, bind=True, max_retries=None)
    def route_many(self: Task, query_ids: list[str]) -> None:
        _route_many(self, query_ids)

    @app.task(name=CALL_TASK, bind=True, max_retries=None)
    def call(self: Task, query_id: str, seq: int) -> None:
        # The tier, named by the publisher in a header: the step need not read it before its
        # claim (a message without it is read from the ledger, as before).
        tier = self.request.get(TIER_HEADER)
        _run(self, functools.partial(steps.call, tier_name=tier), query_id, seq)

    @app.task(name=JUDGE_TASK, bind=True, max_retries=None)
    def judge(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.judge, query_id, seq)

    @app.task(name=COMBINE_TASK, bind=True, max_retries=None)
    def combine(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.combine, query_id, seq)

    @app.task(name=RECONCILE_TASK, acks_late=False)
    def reconcile_task() -> None:
        # acks_late off: a run lost with its worker is simply the next run's job.
        report = reconcile(get_runtime())
        if report.acted:
            log.warning("reconciler: %s", report.summary())


@after_setup_logger.connect
@after_setup_task_logger.connect
def _scrub_logs(logger: logging.Logger, **_: object) -> None:
    """Celery's own log lines (a retry's reason, a task's traceback) can quote an exception
    whose text holds a key: scrub every record of Celery's loggers and of routeq's."""
    install_log_filter([logger, logging.getLogger("routeq"), logging.getLogger("celery")])


@worker_process_init.connect
def _fresh_runtime_in_child(**_: object) -> None:
    """Prefork children rebuild engine and HTTP client instead of sharing the parent's."""
    reset_runtime()
