"""The pipeline in one process: route → call → judge → combine on the real ledger and the real
steps, with no broker and no worker processes.

Publishing a hop appends it to a local queue that ``run`` drains, one step at a time, exactly
as the Celery tasks would run them (``worker.tasks`` wraps the same step functions). What is
different is only delivery: no Redis, no prefork, no retries by countdown. That makes the steps
testable at unit speed against Postgres, and gives evaluation and replay tools a way to push a
dataset through the real pipeline without a deployment.

Models are still called over HTTP (the simulated server, or real providers), and every call,
cost and verdict lands on the ledger as it does in production.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from routeq.config import Settings
from routeq.errors import DeliverySupersededError
from routeq.hooks import Hook
from routeq.ledger.port import WorkerLedger
from routeq.policies import Policy
from routeq.records import HopKind, NewQuery, NextHop
from routeq.tokens import count_tokens
from routeq.worker import steps
from routeq.worker.guard import ProcessGuard, ProviderGuard
from routeq.worker.runtime import new_http_client, runtime_for
from routeq.worker.slots import ProcessSlots

log = logging.getLogger("routeq.pipeline")

Step = Callable[..., steps.StepResult]  # (runtime, query id, seq), and a call's tier_name
STEPS: dict[HopKind, Step] = {
    HopKind.ROUTE: steps.route,
    HopKind.CALL: steps.call,
    HopKind.JUDGE: steps.judge,
    HopKind.COMBINE: steps.combine,
}


class LocalQueue:
    """The publisher of the in-process pipeline: hops wait in a deque, in publish order."""

    def __init__(self) -> None:
        self._hops: deque[NextHop] = deque()

    def publish(
        self, hop: NextHop, *, countdown: float | None = None, republished: bool = False
    ) -> None:
        self._hops.append(hop)

    def publish_routes(self, query_ids: Sequence[uuid.UUID], *, republished: bool = False) -> None:
        self._hops.extend(NextHop(query_id, 1, HopKind.ROUTE) for query_id in query_ids)

    def pop(self) -> NextHop:
        return self._hops.popleft()

    def __len__(self) -> int:
        return len(self._hops)


@dataclass
class RunReport:
    """What ``run`` did: steps executed, deliveries retried (a step raised, or asked to wait),
    and the errors of the steps that raised (scrubbed, as a worker would log them)."""

    steps: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


class PipelineStalledError(RuntimeError):
    """``run`` reached its step limit with hops still queued."""


class InProcessPipeline:
    """Drive queries through the real steps in this process.

    ``policy`` replaces the configured routing policy (the configured rules still run first)
    and ``hooks`` the registered hooks (``None``: the registered ones, as a worker runs them),
    so a test or an evaluation can try a policy without configuring a plugin. ``guard``: the
    provider guard (default: rate limits and breakers in this process)."""

    def __init__(
        self,
        settings: Settings,
        ledger: WorkerLedger,
        *,
        policy: Policy | None = None,
        hooks: Sequence[Hook] | None = None,
        http: httpx.Client | None = None,
        node: str = "in-process",
        guard: ProviderGuard | None = None,
    ) -> None:
        self.queue = LocalQueue()
        self._delivered: set[tuple[uuid.UUID, int]] = set()
        self._own_http = http is None
        self.runtime = runtime_for(
            settings,
            ledger,
            self.queue,
            http or new_http_client(),
            policy=policy,
            hooks=hooks,
            node=node,
            slots=ProcessSlots(),
            guard=guard or ProcessGuard(settings.protection),
        )

    def submit(self, items: Iterable[str | NewQuery]) -> list[uuid.UUID]:
        """Put queries on the ledger and their route hops on the local queue."""
        new = [
            item if isinstance(item, NewQuery) else NewQuery(item, count_tokens(item))
            for item in items
        ]
        submitted = self.runtime.ledger.submit(new)
        for entry in submitted:
            if entry.route_queued:
                self.queue.publish(NextHop(entry.query_id, 1, HopKind.ROUTE))
        return [entry.query_id for entry in submitted]

    def run(self, max_steps: int = 1_000_000) -> RunReport:
        """Run steps until no hop is queued. A step that raises is retried like a Celery
        delivery (its claimed hop handed back first); the ledger's delivery cap ends a hop that
        fails every time. Raises ``PipelineStalledError`` past ``max_steps``."""
        report = RunReport()
        while self.queue:
            if report.steps >= max_steps:
                raise PipelineStalledError(
                    f"{len(self.queue)} hops still queued after {max_steps} steps"
                )
            self._deliver(self.queue.pop(), report)
        return report

    def _deliver(self, hop: NextHop, report: RunReport) -> None:
        rt = self.runtime
        rt.claimed, rt.unrecorded, rt.after_publish = None, [], []
        try:
            self._run_step(hop, report)
        finally:
            steps.after_publish(rt)

    def _run_step(self, hop: NextHop, report: RunReport) -> None:
        """The hop's step, then what it asks for: its hops queued, or the hop again."""
        rt = self.runtime
        # As a worker does: a message's first delivery may hold its claim (``ledger.held``);
        # a hop delivered again (a retry) is claimed on its own.
        key = (hop.query_id, hop.seq)
        rt.hold_claim = key not in self._delivered
        self._delivered.add(key)
        report.steps += 1
        try:
            try:
                step = STEPS[hop.kind]
                if hop.kind is HopKind.CALL:  # its tier, as a worker's message names it
                    step = functools.partial(step, tier_name=hop.tier)
                result = step(rt, hop.query_id, hop.seq)
            finally:
                try:
                    steps.end_delivery(rt)
                except Exception as error:  # must not hide the step's own error
                    log.error("could not end the delivery: %s", type(error).__name__)
        except DeliverySupersededError:
            return
        except Exception as error:
            reason = steps.short_error(error)
            report.errors.append(reason)
            report.retries += 1
            log.error("%s query=%s seq=%s failed: %s", hop.kind, hop.query_id, hop.seq, reason)
            if rt.claimed is not None:
                rt.ledger.release(rt.claimed)
            self.queue.publish(hop)
            return
        if result.retry_in is not None:
            report.retries += 1
            if not self.queue:  # nothing else to do meanwhile: wait a little, as a worker would
                time.sleep(min(result.retry_in, 0.05))
            self.queue.publish(hop)
            return
        for next_hop in result.publish:
            self.queue.publish(next_hop)

    def close(self) -> None:
        if self._own_http:
            self.runtime.http.close()

    def __enter__(self) -> InProcessPipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
