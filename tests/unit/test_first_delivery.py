"""Only a message's first delivery may hold its claim open (``ledger.held``): a delivery that
might follow one lost with its worker must be counted at its claim, or a query that kills its
worker every time would never reach the delivery cap."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, Task

from routeq.queue.publisher import REPUBLISHED_HEADER
from routeq.worker.tasks import _first_delivery


@pytest.fixture
def task() -> Task:
    app = Celery("first-delivery-test", set_as_current=False)

    @app.task(bind=True)
    def probe(self: Task) -> None:  # pragma: no cover - never run, only its request is read
        return None

    return probe


@pytest.mark.parametrize(
    ("request_fields", "first"),
    [
        ({}, True),
        ({"delivery_info": {"redelivered": False}}, True),
        ({"retries": 1}, False),  # Celery's retry: a step failed or asked to wait
        ({"delivery_info": {"redelivered": True}}, False),  # restored by kombu's Redis sweep
        ({"redelivered": True}, False),  # the same flag, as kombu also sets it in the headers
        ({REPUBLISHED_HEADER: True}, False),  # republished by the reconciler
    ],
)
def test_only_a_first_delivery_may_hold_its_claim(
    task: Task, request_fields: dict[str, Any], first: bool
) -> None:
    task.push_request(**request_fields)
    try:
        assert _first_delivery(task) is first
    finally:
        task.pop_request()
