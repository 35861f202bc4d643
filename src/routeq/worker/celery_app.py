"""The Celery app: explicit queues and the reliability settings of ENGINEERING.md §3.

Messages carry ids only. The app has no task bodies; producers publish by task name, so the client
never imports worker code.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from routeq.config import Settings

ROUTE_QUEUE = "route"
JUDGE_QUEUE = "judge"
ROUTE_TASK = "routeq.route"
CALL_TASK = "routeq.call"
JUDGE_TASK = "routeq.judge"
COMBINE_TASK = "routeq.combine"  # split documents: on the route queue, it only plans and waits


def queue_names(settings: Settings) -> list[str]:
    """Every queue routeq uses: route, judge, and one per tier."""
    return [ROUTE_QUEUE, JUDGE_QUEUE, *(tier.queue for tier in settings.tiers)]


def restore_interval(visibility_timeout_s: int) -> int:
    """Seconds between sweeps for unacked messages: a fifth of the visibility timeout, 1-10 s."""
    return max(1, min(10, visibility_timeout_s // 5))


def create_app(settings: Settings, broker_url: str) -> Celery:
    exchange = Exchange("routeq", type="direct")
    worker = settings.worker
    app = Celery("routeq", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[Queue(name, exchange, routing_key=name) for name in queue_names(settings)],
        task_default_queue=ROUTE_QUEUE,
        task_default_exchange="routeq",
        task_default_routing_key=ROUTE_QUEUE,
        task_create_missing_queues=False,
        task_routes={
            ROUTE_TASK: {"queue": ROUTE_QUEUE},
            COMBINE_TASK: {"queue": ROUTE_QUEUE},
            JUDGE_TASK: {"queue": JUDGE_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=worker.task_soft_time_limit_s,
        task_time_limit=worker.task_time_limit_s,
        broker_transport_options={
            "visibility_timeout": worker.visibility_timeout_s,
            # kombu sweeps for messages of dead workers every interval * throttle seconds
            # (100 s by default); sweep every interval so recovery tracks the visibility timeout.
            "unacked_restore_interval": restore_interval(worker.visibility_timeout_s),
            "unacked_restore_throttle": 1,
        },
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app
