"""Following a batch: the time-left estimate counts parts, not only whole documents, and output
that is not a terminal gets plain lines and tables that do not wrap at 80 columns."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from routeq import cli
from routeq.batch.follow import Estimate, clock, follow, status_record
from routeq.batch.overview import WorkUnits
from routeq.ledger.batches import BatchProgress


def progress(done: int = 0, failed: int = 0, total: int = 4) -> BatchProgress:
    running = total - done - failed
    return BatchProgress(
        total=total,
        rejected=0,
        queued=0,
        running=running,
        done=done,
        failed=failed,
        unsubmitted=0,
        reused=0,
        spent=Decimal("0E-10"),
    )


def test_the_estimate_comes_from_parts_while_no_document_has_finished() -> None:
    # Four long documents of 10 parts each (+1 for each document's own finish): 44 units.
    estimate = Estimate(WorkUnits(total=44, finished=0), now=0.0)
    # 60 s in, 11 parts are done and not one document: 33 units left at 11 per minute.
    assert estimate.seconds_left(WorkUnits(total=44, finished=11), now=60.0) == pytest.approx(180)


def test_units_finished_before_following_began_do_not_inflate_the_rate() -> None:
    estimate = Estimate(WorkUnits(total=100, finished=90), now=0.0)  # a resumed batch
    assert estimate.seconds_left(WorkUnits(total=100, finished=90), now=30.0) is None
    assert estimate.seconds_left(WorkUnits(total=100, finished=95), now=50.0) == pytest.approx(50)
    assert estimate.seconds_left(WorkUnits(total=100, finished=100), now=60.0) == 0.0


def test_clock() -> None:
    assert clock(None) == "estimating"
    assert clock(0) == "0:00:00"
    assert clock(3725.4) == "1:02:05"


def test_outside_a_terminal_progress_is_plain_lines_with_an_early_estimate() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=80, color_system=None)
    assert not console.is_terminal
    # No document finishes until the very end, but parts finish from the second read on (the
    # first read of units is the estimate's starting point).
    reads = iter([0, 0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 44])
    documents = iter([progress()] * 14 + [progress(done=4)])
    final = follow(
        console,
        lambda: next(documents),
        lambda: WorkUnits(total=44, finished=next(reads)),
        timeout=60,
        poll_interval=0.01,
        plain_interval=0.0,
    )
    assert final.complete
    lines = buffer.getvalue().splitlines()
    assert "\r" not in buffer.getvalue() and "\x1b" not in buffer.getvalue()
    assert lines[0].startswith("summarizing: 0/4 documents (done 0, failed 0), work units 0/44")
    assert lines[0].endswith("ETA estimating")
    # Documents stand at 0/4, yet an estimate is shown as soon as parts finish.
    assert re.search(r"0/4 documents .* ETA \d+:\d\d:\d\d$", lines[1]), lines[1]
    assert lines[-1].startswith("summarizing: 4/4 documents (done 4, failed 0), work units 44/44")
    assert "spent $0.0000" in lines[-1]  # "0E-10" is never shown


def test_plain_lines_are_rate_limited_but_the_last_state_is_always_printed() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    reads = iter([0, *range(0, 11)])
    documents = iter([progress()] * 10 + [progress(done=4)])
    follow(
        console,
        lambda: next(documents),
        lambda: WorkUnits(total=10, finished=next(reads)),
        timeout=60,
        poll_interval=0.001,
        plain_interval=3600,
    )
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2 and "work units 10/10" in lines[-1]


def test_status_record_has_spend_as_a_number() -> None:
    record = status_record(uuid.uuid4(), "b", progress(done=1, failed=1), WorkUnits(8, 5))
    assert record["spent"] == 0.0 and isinstance(record["spent"], float)
    assert record["failed"] == 1 and record["work_units"] == {"total": 8, "finished": 5}
    assert record["state"] == "in progress"


def test_tables_are_not_wrapped_at_80_columns_outside_a_terminal(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli._console().width >= 160  # capsys's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert cli._console().width == 100  # an explicit width still wins


def test_in_a_terminal_the_live_bar_shows_documents_work_and_the_estimate() -> None:
    buffer = StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system=None)
    reads = iter([0, 0, 5, 10])
    documents = iter([progress(), progress(), progress(done=4)])
    final = follow(
        console,
        lambda: next(documents),
        lambda: WorkUnits(total=10, finished=next(reads)),
        timeout=60,
        poll_interval=0.01,
    )
    assert final.complete
    shown = buffer.getvalue()
    assert "docs 4/4 · failed 0 · work 10/10 · $0.0000 · ETA 0:00:00" in shown
