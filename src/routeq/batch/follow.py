"""Following a batch from the command line: registration, live progress, status and the report.

Progress reads the ledger, not this process's memory, so it is right when several producers feed
the same batch, and the same batch can be followed from another terminal. In a terminal it is a
live bar; anywhere else (a pipe, a CI log) it is a plain line now and then, since a redrawn bar
turns into thousands of lines there.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from routeq.batch.overview import WorkUnits
from routeq.batch.report import OutputFormat, batch_totals, totals_table, write_results
from routeq.config import Settings
from routeq.exitcodes import CommandFailed
from routeq.ledger.batches import BatchProgress, BatchStore, DocumentResult
from routeq.summary_spec import SummarySpec

if TYPE_CHECKING:
    from routeq.client import BatchHandle

PLAIN_INTERVAL_S = 10.0  # outside a terminal: a progress line at most this often


@contextmanager
def interruptible() -> Iterator[Callable[[], bool]]:
    """While registering: Ctrl-C asks to stop after the current group (committed and
    published), instead of tearing a transaction in half. Yields the "stop?" check."""
    requested = False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        requested = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield lambda: requested
    finally:
        signal.signal(signal.SIGINT, previous)


def print_registration(console: Console, handle: BatchHandle) -> None:
    """Name the batch and say what registering did: submitted, kept, reused, retried, rejected."""
    actions = ", ".join(f"{count} {action}" for action, count in sorted(handle.actions.items()))
    console.print(f"batch [bold]{handle.name}[/bold]  id {handle.id}", highlight=False)
    console.print(f"documents: {actions or 'none'}", highlight=False)


def print_interrupted(
    console: Console,
    handle: BatchHandle,
    *,
    local: bool,
    timeout: BatchProgress | None = None,
) -> None:
    """Say what an interruption (or running out of time) left behind and how to go on."""
    if handle.interrupted:
        what = "registration stopped early; run the same command again to add the rest."
    elif local:
        what = (
            "this command's workers stopped with it; finished summaries are kept, and running "
            "the same command again finishes the batch (nothing is paid twice)."
        )
    else:
        what = "the batch keeps running on the workers."
    head = (
        "interrupted"
        if timeout is None
        else (f"timed out with {timeout.finished} of {timeout.accepted} documents finished")
    )
    console.print(
        f"{head}: batch {handle.name} ({handle.id}): {what}\n"
        f"  progress: routeq batch status {handle.id}\n"
        f"  results:  routeq batch results {handle.id} --out FILE",
        highlight=False,
    )


# -- time left -------------------------------------------------------------------------------------


class Estimate:
    """Time left, from the rate at which work units (documents, and the parts of split ones)
    finished since following began. Parts finish long before their documents, so a run of
    long documents on a slow model gets an estimate after its first part instead of showing
    none until whole documents start to finish. Units already finished when following began
    (a resumed batch, reused summaries) do not count towards the rate."""

    def __init__(self, units: WorkUnits, now: float) -> None:
        self._start_finished = units.finished
        self._start = now

    def seconds_left(self, units: WorkUnits, now: float) -> float | None:
        """None until a unit has finished in this run (there is no rate to go on yet)."""
        if units.remaining == 0:
            return 0.0
        finished = units.finished - self._start_finished
        elapsed = now - self._start
        if finished <= 0 or elapsed <= 0:
            return None
        return units.remaining * elapsed / finished


def clock(seconds: float | None) -> str:
    """``H:MM:SS``, or "estimating" while there is nothing to estimate from."""
    if seconds is None:
        return "estimating"
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# -- following -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    progress: BatchProgress
    units: WorkUnits
    eta: str


def follow(
    console: Console,
    progress: Callable[[], BatchProgress],
    units: Callable[[], WorkUnits],
    *,
    timeout: float,
    poll_interval: float = 0.5,
    plain_interval: float = PLAIN_INTERVAL_S,
) -> BatchProgress:
    """Progress until every accepted document is done or failed, or ``timeout`` passes;
    returns the last progress read (check ``complete``). ``progress`` and ``units`` read the
    ledger: documents by state, and the finer work units the estimate counts."""
    deadline = time.monotonic() + timeout
    first = units()
    estimate = Estimate(first, time.monotonic())

    def read() -> Snapshot:
        now_units = units()
        return Snapshot(
            progress(), now_units, clock(estimate.seconds_left(now_units, time.monotonic()))
        )

    snapshots = _poll(read, deadline, poll_interval)
    if console.is_terminal:
        return _live_bar(console, snapshots)
    return _plain_lines(console, snapshots, plain_interval)


def _poll(read: Callable[[], Snapshot], deadline: float, interval: float) -> Iterator[Snapshot]:
    """Snapshots until the batch is complete or the deadline passes (the last one included)."""
    while True:
        snapshot = read()
        yield snapshot
        if snapshot.progress.complete or time.monotonic() >= deadline:
            return
        time.sleep(interval)


def _live_bar(console: Console, snapshots: Iterator[Snapshot]) -> BatchProgress:
    # Fits 80 columns: documents finished (and failed), work units, spend, time left.
    columns = (
        BarColumn(bar_width=12),
        TextColumn("docs {task.fields[documents]}"),
        TextColumn("· failed {task.fields[failed]}"),
        TextColumn("· work {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("· ${task.fields[spent]}"),
        TextColumn("· ETA {task.fields[eta]}"),
    )
    first = next(snapshots)  # the bar's columns are formatted from the first refresh on
    last = first.progress
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(
            "batch", total=first.units.total, completed=first.units.finished, **_fields(first)
        )
        for snapshot in snapshots:
            last = snapshot.progress
            bar.update(
                task,
                total=snapshot.units.total,
                completed=snapshot.units.finished,
                **_fields(snapshot),
            )
    return last


def _plain_lines(console: Console, snapshots: Iterator[Snapshot], interval: float) -> BatchProgress:
    """A line when something changed and ``interval`` has passed, and always the last one."""
    last: Snapshot | None = None
    printed: tuple[int, int] | None = None
    printed_at = float("-inf")
    for snapshot in snapshots:
        last = snapshot
        state = (snapshot.progress.finished, snapshot.units.finished)
        now = time.monotonic()
        if state != printed and now - printed_at >= interval:
            console.print(plain_line(snapshot), highlight=False, markup=False, soft_wrap=True)
            printed, printed_at = state, now
    assert last is not None
    if (last.progress.finished, last.units.finished) != printed:
        console.print(plain_line(last), highlight=False, markup=False, soft_wrap=True)
    return last.progress


def _fields(snapshot: Snapshot) -> dict[str, Any]:
    progress = snapshot.progress
    return {
        "documents": f"{progress.finished}/{progress.accepted}",
        "done": progress.done,
        "failed": progress.failed,
        "spent": f"{progress.spent:.4f}",
        "eta": snapshot.eta,
    }


def plain_line(snapshot: Snapshot) -> str:
    """One progress line for logs: documents, parts, spend and the estimate."""
    fields = _fields(snapshot)
    units = snapshot.units
    return (
        f"summarizing: {fields['documents']} documents (done {fields['done']}, failed "
        f"{fields['failed']}), work units {units.finished}/{units.total}, spent "
        f"${fields['spent']}, ETA {fields['eta']}"
    )


# -- status ----------------------------------------------------------------------------------------


def status_record(
    batch_id: uuid.UUID, name: str, progress: BatchProgress, units: WorkUnits
) -> dict[str, Any]:
    """``routeq batch status --json``: the same numbers as the table (spent as a number)."""
    return {
        "id": str(batch_id),
        "name": name,
        "state": "complete" if progress.complete else "in progress",
        "documents": progress.total,
        "accepted": progress.accepted,
        "finished": progress.finished,
        "done": progress.done,
        "failed": progress.failed,
        "running": progress.running,
        "queued": progress.queued,
        "rejected": progress.rejected,
        "unsubmitted": progress.unsubmitted,
        "reused": progress.reused,
        "work_units": {"total": units.total, "finished": units.finished},
        "spent": float(progress.spent),
    }


def print_status(console: Console, batch_id: uuid.UUID, name: str, progress: BatchProgress) -> None:
    table = Table(title=f"batch {name} ({batch_id})", show_header=False)
    table.add_column("state")
    table.add_column("documents", justify="right")
    for label, value in (
        ("documents", progress.total),
        ("done", progress.done),
        ("failed", progress.failed),
        ("running", progress.running),
        ("queued", progress.queued),
        ("rejected", progress.rejected),
        ("not yet submitted", progress.unsubmitted),
        ("reused (summarised before)", progress.reused),
    ):
        table.add_row(label, str(value))
    table.add_row("spent", f"${progress.spent:.6f}")
    console.print(table)
    state = "complete" if progress.complete else "in progress"
    console.print(
        f"{progress.finished} of {progress.accepted} accepted documents finished: {state}"
    )


# -- results ---------------------------------------------------------------------------------------


def write_and_report(
    console: Console,
    store: BatchStore,
    settings: Settings,
    batch_id: uuid.UUID,
    out: Path,
    fmt: OutputFormat,
    *,
    spent_at_start: Decimal | None = None,
) -> list[DocumentResult]:
    """Write every document's result to ``out``, print the totals table and return the
    results (the caller turns failures into the exit status)."""
    batch = store.find(batch_id)
    results = store.results(batch_id)
    totals = batch_totals(
        results,
        settings.top_tier,
        SummarySpec.model_validate(batch.spec),
        store.spent(batch_id),
        store.shadow_spent(batch_id),
    )
    write_results(out, fmt, batch.name, results, totals)
    console.print(totals_table(totals, f"batch {batch.name}"))
    if spent_at_start is not None:
        paid = totals.cost - spent_at_start
        console.print(f"paid by this run: ${max(paid, Decimal(0)):.6f}")
    console.print(f"results: {out} ({len(results)} documents, {fmt})")
    return results


def warn_rejected(console: Console, results: list[DocumentResult], limit: int = 10) -> None:
    """Name the rejected inputs and why, on stderr: they are not failures of the run (a
    corpus often holds a file routeq cannot read), but they must not pass unnoticed."""
    rejected = [result for result in results if result.status == "rejected"]
    if not rejected:
        return
    console.print(Text(f"warning: {len(rejected)} inputs rejected:", style="yellow"))
    for result in rejected[:limit]:
        name, reason = result.doc_id or result.source, result.reason or "no reason recorded"
        # most reasons already start with the input's path: do not say it twice
        shown = reason if reason.startswith(f"{name}:") else f"{name}: {reason}"
        console.print(Text(f"  {shown}"))
    if len(rejected) > limit:
        console.print(Text(f"  … and {len(rejected) - limit} more (see the results file)"))


def failures(results: list[DocumentResult], batch_id: uuid.UUID) -> CommandFailed | None:
    """The error for a batch with failed documents (each with its reason), or None."""
    failed = [result for result in results if result.status == "failed"]
    if not failed:
        return None
    accepted = sum(result.status != "rejected" for result in results)
    reasons = [f"{result.doc_id}: {result.reason or 'no reason recorded'}" for result in failed]
    return CommandFailed(
        f"{len(failed)} of {accepted} documents failed (their summaries are missing; running "
        f"the same command again retries them; details: routeq batch results {batch_id} "
        "--out FILE):",
        reasons,
    )
