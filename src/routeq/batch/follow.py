"""Following a batch from the command line: registration, a live progress bar, the report.

The progress bar reads the ledger, not this process's memory, so it is right when several
producers feed the same batch, and the same batch can be followed from another terminal.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from routeq.batch.report import OutputFormat, batch_totals, totals_table, write_results
from routeq.batch.spec import SummarySpec
from routeq.ledger.batches import BatchProgress

if TYPE_CHECKING:
    from routeq.client import BatchHandle, Client


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


def follow(
    console: Console, handle: BatchHandle, *, timeout: float, poll_interval: float = 0.5
) -> BatchProgress:
    """A live bar until every accepted document is done or failed, or ``timeout`` passes;
    returns the last progress read (check ``complete``)."""
    columns = (
        TextColumn("[bold]summarizing[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("done {task.fields[done]} · failed {task.fields[failed]}"),
        TextColumn("· spent ${task.fields[spent]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as bar:
        progress = handle.progress()
        task = bar.add_task("batch", total=progress.accepted, done=0, failed=0, spent="0")
        while True:
            bar.update(
                task,
                total=progress.accepted,
                completed=progress.finished,
                done=progress.done,
                failed=progress.failed,
                spent=f"{progress.spent:.4f}",
            )
            if progress.complete:
                return progress
            if time.monotonic() >= deadline:
                return progress
            time.sleep(poll_interval)
            progress = handle.progress()


def print_status(console: Console, handle: BatchHandle) -> None:
    progress = handle.progress()
    table = Table(title=f"batch {handle.name} ({handle.id})", show_header=False)
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


def write_and_report(
    console: Console, client: Client, handle: BatchHandle, out: Path, fmt: OutputFormat
) -> None:
    """Write every document's result to ``out`` and print the totals table."""
    batch = client.batches.find(handle.id)
    results = handle.results()
    totals = batch_totals(
        results,
        client.settings.top_tier,
        SummarySpec.model_validate(batch.spec),
        client.batches.spent(handle.id),
    )
    write_results(out, fmt, handle.name, results, totals)
    console.print(totals_table(totals, f"batch {handle.name}"))
    paid = totals.cost - handle.spent_at_start if handle.spent_at_start is not None else None
    if paid is not None:
        console.print(f"paid by this run: ${max(paid, Decimal(0)):.6f}")
    console.print(f"results: {out} ({len(results)} documents, {fmt})")
