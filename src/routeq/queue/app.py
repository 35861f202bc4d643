"""The Celery app: explicit queues and the reliability settings of docs/reliability.md.

Messages carry ids only. The app has no task bodies; producers publish by task name, so the client
never imports worker code.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from routeq.config import Settings

ROUTE_QUEUE = "route"
JUDGE_QUEUE = "judge"
MAINTENANCE_QUEUE = "maintenance"  # the reconciler; consumed by the route workers
ROUTE_TASK = "routeq.route"
ROUTE_MANY_TASK = "routeq.route_many"  # a bulk submission's route hops, many ids per message
CALL_TASK = "routeq.call"
JUDGE_TASK = "routeq.judge"
COMBINE_TASK = "routeq.combine"  # split documents: on the route queue, it only plans and waits
RECONCILE_TASK = "routeq.reconcile"


def queue_names(settings: Settings) -> list[str]:
    """Every queue routeq uses: route, judge, maintenance, and one per tier."""
    return [ROUTE_QUEUE, JUDGE_QUEUE, MAINTENANCE_QUEUE, *(tier.queue for tier in settings.tiers)]


def restore_interval(visibility_timeout_s: int) -> int:
    """Seconds between sweeps for unacked messages: a fifth of the visibility timeout, 1-10 s."""
    return max(1, min(10, visibility_timeout_s // 5))


def sweep_lock_expiry(visibility_timeout_s: int) -> int:
    """Seconds a dead sweeper's lock blocks the others: two sweep intervals, at least 5 s."""
    return max(5, 2 * restore_interval(visibility_timeout_s))


def create_app(settings: Settings, broker_url: str) -> Celery:
    exchange = Exchange("routeq", type="direct")
    limits = settings.time_limits
    interval = settings.worker.reconcile_interval_s
    app = Celery("routeq", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[Queue(name, exchange, routing_key=name) for name in queue_names(settings)],
        task_default_queue=ROUTE_QUEUE,
        task_default_exchange="routeq",
        task_default_routing_key=ROUTE_QUEUE,
        task_create_missing_queues=False,
        task_routes={
            ROUTE_TASK: {"queue": ROUTE_QUEUE},
            ROUTE_MANY_TASK: {"queue": ROUTE_QUEUE},
            COMBINE_TASK: {"queue": ROUTE_QUEUE},
            JUDGE_TASK: {"queue": JUDGE_QUEUE},
            RECONCILE_TASK: {"queue": MAINTENANCE_QUEUE},
        },
        # Celery beat (``routeq beat``, or ``-B`` on the local stack's route worker) runs the
        # reconciler; a run that waits longer than its interval is dropped, not piled up.
        beat_schedule={
            "reconcile": {
                "task": RECONCILE_TASK,
                "schedule": interval,
                "options": {"queue": MAINTENANCE_QUEUE, "expires": interval},
            }
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Backstops sized from the tiers' timeouts and retries (routeq.timing): a hard kill acks
        # the message, and the hop's lease running out lets the reconciler publish it again.
        task_soft_time_limit=limits.soft_s,
        task_time_limit=limits.hard_s,
        broker_transport_options={
            "visibility_timeout": limits.visibility_s,
            # kombu sweeps for messages of dead workers every interval * throttle seconds
            # (100 s by default); sweep every interval so recovery tracks the visibility timeout.
            "unacked_restore_interval": restore_interval(limits.visibility_s),
            "unacked_restore_throttle": 1,
            # The sweep holds a Redis lock for milliseconds, but a worker killed while holding
            # it leaves it for the lock's expiry (kombu: 5 min), and no worker sweeps until then.
            # Two sweeps overlapping is harmless (each restore is a watched transaction).
            "unacked_mutex_expire": sweep_lock_expiry(limits.visibility_s),
        },
        # Task events cost about four Redis publishes per hop. Off unless asked for: Flower
        # switches them on in the workers it watches when it connects (its --enable-events,
        # on by default), and ``worker.task_events`` turns them on from the start.
        worker_send_task_events=settings.worker.task_events,
        task_send_sent_event=settings.worker.task_events,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker outlives a Redis restart of any length
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app
