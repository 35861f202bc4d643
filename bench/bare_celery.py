"""The baseline routeq is measured against: a bare Celery pipeline of routeq's shape.

Three tasks on three queues, chained by publishing after commit: ``route`` (one commit),
``call`` (one HTTP call to the model, then one commit), ``judge`` (one commit that marks the
query done). Acks late, prefetch 1, JSON, no results, no events, ids only in messages: the
settings routeq keeps, with none of its ledger, fencing, budgets or guard. Whatever routeq
costs above this is what its bookkeeping costs.

Run a worker (``bench/perf.py`` does):

    BARE_BROKER_URL=redis://... BARE_DATABASE_URL=postgresql://... BARE_MODEL_URL=http://... \\
        python bench/bare_celery.py worker --pool prefork -c 2

The table it writes is ``bare_queries`` (``create_table``); one row per query, created by the
producer, with the time each hop committed (the database's clock), so latency is measured
exactly as routeq's is: from the row's ``created_at`` to ``finished_at``.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import psycopg
from celery import Celery
from kombu import Exchange, Queue

QUEUES = ("bare.route", "bare.call", "bare.judge")
TABLE = """
CREATE TABLE IF NOT EXISTS bare_queries (
    id uuid PRIMARY KEY,
    text text NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    answer text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    routed_at timestamptz,
    called_at timestamptz,
    finished_at timestamptz
)
"""


def create_app(broker_url: str) -> Celery:
    exchange = Exchange("bare", type="direct")
    app = Celery("bare", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[Queue(name, exchange, routing_key=name) for name in QUEUES],
        task_default_queue=QUEUES[0],
        task_default_exchange="bare",
        task_default_routing_key=QUEUES[0],
        task_routes={
            "bare.route": {"queue": "bare.route"},
            "bare.call": {"queue": "bare.call"},
            "bare.judge": {"queue": "bare.judge"},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


app = create_app(os.environ.get("BARE_BROKER_URL", "redis://127.0.0.1:6379/11"))
_local = threading.local()


def _connection() -> psycopg.Connection[Any]:
    """One connection and HTTP client per process and thread, opened after the fork."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid = os.getpid()
        _local.db = psycopg.connect(os.environ["BARE_DATABASE_URL"])
        _local.http = httpx.Client()
    return _local.db  # type: ignore[no-any-return]


def _commit(sql: str, *params: Any) -> None:
    """One statement in one transaction: BEGIN, the statement, COMMIT (three round trips)."""
    db = _connection()
    with db.transaction():
        db.execute(sql, params)


@app.task(name="bare.route")
def route(query_id: str) -> None:
    _commit("UPDATE bare_queries SET routed_at = clock_timestamp() WHERE id = %s", query_id)
    app.send_task("bare.call", args=[query_id], queue="bare.call", routing_key="bare.call")


@app.task(name="bare.call")
def call(query_id: str) -> None:
    _connection()
    http: httpx.Client = _local.http
    text = f"query {query_id}"  # the text stays in Postgres in routeq; here it is not read
    response = http.post(
        os.environ["BARE_MODEL_URL"] + "/chat/completions",
        json={"model": os.environ["BARE_MODEL"], "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )
    response.raise_for_status()
    answer = response.json()["choices"][0]["message"]["content"]
    _commit(
        "UPDATE bare_queries SET answer = %s, called_at = clock_timestamp() WHERE id = %s",
        answer,
        query_id,
    )
    app.send_task("bare.judge", args=[query_id], queue="bare.judge", routing_key="bare.judge")


@app.task(name="bare.judge")
def judge(query_id: str) -> None:
    _commit(
        "UPDATE bare_queries SET status = 'done', finished_at = clock_timestamp() "
        "WHERE id = %s AND answer IS NOT NULL",
        query_id,
    )


def create_table(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(TABLE)
        db.execute("TRUNCATE bare_queries")


def submit(database_url: str, texts: Sequence[str]) -> list[uuid.UUID]:
    """One multi-row INSERT, then one publish per query on one producer connection."""
    ids = [uuid.uuid4() for _ in texts]
    with psycopg.connect(database_url) as db, db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bare_queries (id, text) VALUES (%s, %s)",
            list(zip(ids, texts, strict=True)),
        )
    with app.producer_or_acquire() as producer:
        for query_id in ids:
            app.send_task(
                "bare.route",
                args=[str(query_id)],
                queue="bare.route",
                routing_key="bare.route",
                producer=producer,
            )
    return ids


if __name__ == "__main__":
    app.worker_main(["worker", "-Q", ",".join(QUEUES), *sys.argv[2:]])
