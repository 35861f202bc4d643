"""``routeq summarize`` and ``routeq batch ...`` as a user and a script see them: exit statuses,
the reasons on stderr, JSON with numbers, and progress that reads well in a log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, running_stack, sim_config

from routeq.sim import SimModel

pytestmark = pytest.mark.integration

# Every model of these stacks is down: a query at the top tier waits for the provider's breaker
# (protection.wait_deadline_s) before it fails; these tests are about the failure, not the wait.
FAIL_AT_ONCE = {"protection": {"wait_deadline_s": 0}}

_PLAIN = {"NO_COLOR": "1", "TERM": "dumb"}
_STYLING = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "COLUMNS")


def routeq(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in stack.env.items() if name not in _STYLING} | _PLAIN
    return subprocess.run(
        [sys.executable, "-m", "routeq", *args],
        env=env,
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def notes(root: Path, count: int) -> Path:
    folder = root / "notes"
    folder.mkdir()
    for index in range(count):
        (folder / f"n{index}.txt").write_text(
            f"Memo {index}. Aldera Systems hired {index + 12} engineers in Lisbon and shipped "
            f"{index + 3} releases. The board, chaired by Marta Kovacs, approved a budget of "
            f"{index + 40} million for the next year. Customer churn fell to {index + 2}%.",
            encoding="utf-8",
        )
    return folder


def shown(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


BROKEN = {
    name: SimModel(name, quality=0.9, fault_500=1.0)
    for name in ("sim-small", "sim-medium", "sim-large")
}


def test_a_batch_whose_documents_failed_exits_1_and_lists_them(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    folder = notes(tmp_path, 3)
    with running_stack(
        tmp_path, migrated_url, broker_url, sim_config(**BROKEN), **FAIL_AT_ONCE
    ) as (
        stack,
        _,
    ):
        stack.start_worker("-c", "2")

        ran = routeq(stack, "summarize", str(folder), "--out", "out.jsonl", "--name", "broken")

        assert ran.returncode == 1, shown(ran)
        assert "Traceback" not in ran.stderr, shown(ran)
        assert "error: 3 of 3 documents failed" in ran.stderr, shown(ran)
        for index in range(3):
            assert f"\n  n{index}.txt: " in ran.stderr, shown(ran)
        # The results are written all the same, with costs as JSON numbers.
        lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert {line["status"] for line in lines[:-1]} == {"failed"}
        assert all(isinstance(line["cost"], int | float) for line in lines)
        assert isinstance(lines[-1]["top_tier_estimate"], int | float)

        status = routeq(stack, "batch", "status", "broken")
        assert status.returncode == 1, shown(status)
        assert "error: 3 of 3 documents failed" in status.stderr

        as_json = routeq(stack, "batch", "status", "broken", "--json")
        assert as_json.returncode == 1, shown(as_json)
        record = json.loads(as_json.stdout)
        assert (record["name"], record["failed"], record["done"]) == ("broken", 3, 0)
        assert isinstance(record["spent"], int | float)

        results = routeq(stack, "batch", "results", "broken", "--out", "again.md")
        assert results.returncode == 1 and "3 of 3 documents failed" in results.stderr


def test_a_healthy_batch_exits_0_warns_about_rejected_inputs_and_is_listed(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    folder = notes(tmp_path, 2)
    (folder / "empty.txt").write_text("", encoding="utf-8")
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        stack.start_worker("-c", "2")

        ran = routeq(stack, "summarize", str(folder), "--out", "out.jsonl", "--name", "healthy")

        assert ran.returncode == 0, shown(ran)
        assert "warning: 1 inputs rejected:" in ran.stderr, shown(ran)
        assert "\n  empty.txt: " in ran.stderr, shown(ran)
        # Not a terminal: plain progress lines, not a redrawn bar.
        assert "summarizing: 2/2 documents (done 2, failed 0)" in ran.stdout, shown(ran)
        assert "\r" not in ran.stdout

        status = routeq(stack, "batch", "status", "healthy", "--json")
        assert status.returncode == 0, shown(status)
        record = json.loads(status.stdout)
        assert (record["done"], record["rejected"], record["state"]) == (2, 1, "complete")
        assert isinstance(record["spent"], float) and record["spent"] > 0

        listed = routeq(stack, "batch", "list", "--json")
        assert listed.returncode == 0, shown(listed)
        [row] = json.loads(listed.stdout)
        assert (row["name"], row["documents"], row["done"], row["failed"]) == ("healthy", 3, 2, 0)
        assert row["id"] == record["id"] and row["spent"] == pytest.approx(record["spent"])
        assert row["created_at"]

        table = routeq(stack, "batch", "list")
        assert table.returncode == 0, shown(table)
        [line] = [line for line in table.stdout.splitlines() if "healthy" in line]
        assert record["id"] in line and "$" in line  # one row, not wrapped at 80 columns


def test_batch_list_without_batches(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        listed = routeq(stack, "batch", "list")
        assert listed.returncode == 0, shown(listed)
        assert "no batches yet" in listed.stdout
        assert json.loads(routeq(stack, "batch", "list", "--json").stdout) == []


def test_an_unknown_batch_is_a_usage_error(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        for args in (["batch", "status", "nope"], ["batch", "results", "nope", "--out", "x.md"]):
            ran = routeq(stack, *args)
            assert ran.returncode == 2, shown(ran)
            assert ran.stderr.startswith("error: no batch with id or name 'nope'"), shown(ran)


@pytest.fixture
def first_run_folder() -> Iterator[Path]:
    """An empty folder with nothing configured, as a user's first run. Not under pytest's
    tmp_path: as root the embedded Postgres runs as another user, who must traverse the
    folder's parents, and a pytest session starting resets its base folder to mode 0700."""
    folder = Path(tempfile.mkdtemp(prefix="routeq-cli-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_reading_batches_on_the_embedded_default_leaves_nothing_running(
    first_run_folder: Path,
) -> None:
    """``routeq batch list`` / ``batch status`` need the database only: no embedded Redis is
    started, and the embedded Postgres they had to start is stopped again."""
    tmp_path = first_run_folder
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ROUTEQ_") or name.startswith("ROUTEQ_TEST_")
    } | _PLAIN
    state = tmp_path / ".routeq"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "routeq", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        listed = run("batch", "list")
        assert listed.returncode == 0 and "no batches yet" in listed.stdout, shown(listed)
        missing = run("batch", "status", "nope")
        assert missing.returncode == 2 and "no batch with id" in missing.stderr, shown(missing)
        for ran in (listed, missing):
            assert "Traceback" not in ran.stderr, shown(ran)
        assert not (state / "postgres" / "postmaster.pid").exists(), "Postgres left running"
        assert not (state / "redis" / "redis.sock").exists(), "Redis started for a read"
    finally:
        run("embedded", "stop")
