"""The Celery tasks: thin wrappers that run one step and publish what it returns, after commit.

Arguments are ids only: ``(query_id, seq)``. A step that finds its hop owned by a live delivery
asks to be retried after the owner's lease; that deferral is not a provider retry and is not
capped by Celery (the ledger's delivery cap bounds the work).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from celery import Celery, Task
from celery.signals import worker_process_init

from routeq.worker import steps
from routeq.worker.celery_app import CALL_TASK, COMBINE_TASK, JUDGE_TASK, ROUTE_TASK
from routeq.worker.runtime import Runtime, get_runtime, reset_runtime

log = logging.getLogger("routeq.worker")

Step = Callable[[Runtime, uuid.UUID, int], steps.StepResult]


def _run(task: Task, step: Step, query_id: str, seq: int) -> None:
    rt = get_runtime()
    try:
        result = step(rt, uuid.UUID(query_id), seq)
    except Exception as error:
        # Not a provider error (those are handled in the step): a bug, the database going away,
        # a soft time limit. With acks_late Celery would ack and forget the message, leaving the
        # hop running; instead hand the hop back and retry the delivery. The ledger's delivery
        # cap ends a hop that fails every time (a later retry finds it exhausted).
        log.exception(
            "%s query=%s seq=%s failed: %s", task.name, query_id, seq, type(error).__name__
        )
        try:
            rt.ledger.release(uuid.UUID(query_id), seq)
        except Exception:
            log.exception("could not release hop query=%s seq=%s", query_id, seq)
        retries = task.request.retries
        raise task.retry(
            exc=error,
            countdown=min(30.0, 0.5 * 2**retries),
            max_retries=None,  # bounded by the ledger's delivery cap, not by Celery
        ) from error
    if result.retry_in is not None:
        log.info(
            "%s query=%s seq=%s busy; retry in %.1fs", task.name, query_id, seq, result.retry_in
        )
        raise task.retry(countdown=result.retry_in, max_retries=None)
    if result.note:
        log.info("%s query=%s seq=%s: %s", task.name, query_id, seq, result.note)
    for hop in result.publish:
        rt.publisher.publish(hop)


def register_tasks(app: Celery) -> None:
    """Attach route, call, judge and combine to ``app``."""

    @app.task(name=ROUTE_TASK, bind=True)
    def route(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.route, query_id, seq)

    @app.task(name=CALL_TASK, bind=True)
    def call(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.call, query_id, seq)

    @app.task(name=JUDGE_TASK, bind=True)
    def judge(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.judge, query_id, seq)

    @app.task(name=COMBINE_TASK, bind=True)
    def combine(self: Task, query_id: str, seq: int) -> None:
        _run(self, steps.combine, query_id, seq)


@worker_process_init.connect
def _fresh_runtime_in_child(**_: object) -> None:
    """Prefork children rebuild engine and HTTP client instead of sharing the parent's."""
    reset_runtime()
