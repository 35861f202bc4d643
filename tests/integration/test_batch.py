"""Batch summarization through real worker processes on real Redis and Postgres."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from audit import assert_journey_consistent, ledger_rows
from stack import Stack, running_stack, sim_config

from routeq import Client
from routeq.batch import collect
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

# Every model of these stacks is down: a query at the top tier waits for the provider's breaker
# (protection.wait_deadline_s) before it fails; these tests are about the failure, not the wait.
FAIL_AT_ONCE = {"protection": {"wait_deadline_s": 0}}

REPO = Path(__file__).resolve().parents[2]
FINAL = {"done", "failed", "rejected"}


def make_corpus(tmp_path: Path, docs: int, long: int, seed: int = 3) -> Path:
    """The example corpus generator, at test scale (malformed inputs included)."""
    out = tmp_path / "corpus"
    script = REPO / "examples" / "make_corpus.py"
    options = ["--docs", str(docs), "--long", str(long), "--seed", str(seed)]
    subprocess.run(
        [sys.executable, str(script), "--out", str(out), *options],
        check=True,
        capture_output=True,
    )
    return out


def batch_ledger(database_url: str, batch_id: Any) -> dict[str, Any]:
    """Queries (with their hops and requests) that this batch's documents own."""
    queries, hops, requests = ledger_rows(database_url)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        doc_ids = {
            row.id
            for row in conn.execute(
                sa.text("SELECT id FROM batch_documents WHERE batch_id = :b"), {"b": batch_id}
            )
        }
    engine.dispose()
    owned = {qid: q for qid, q in queries.items() if q.batch_document_id in doc_ids}
    return {"queries": owned, "hops": hops, "requests": requests}


def test_a_batch_of_100_plus_documents_accounts_for_every_input(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given 110 ordinary documents, 4 long reports that need splitting and malformed inputs
    corpus = make_corpus(tmp_path, docs=110, long=4)
    inputs = collect([corpus])
    assert len(inputs) >= 100
    assert any(not doc.ok for doc in inputs), "the corpus must hold malformed inputs"
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        stack.start_worker("-c", "4")
        with Client(stack.settings) as client:
            # When the batch is submitted and runs to the end
            handle = client.submit_batch([corpus], name="corpus")
            progress = handle.wait(timeout=300)
            results = handle.results()

            # Then every input has exactly one row, in input order, in exactly one final state
            assert [r.doc_id for r in results] == [d.doc_id for d in inputs]
            assert {r.status for r in results} <= FINAL
            assert progress.total == len(inputs) and progress.complete
            rejected = {r.doc_id: r.reason for r in results if r.status == "rejected"}
            assert rejected == {d.doc_id: d.rejected for d in inputs if not d.ok}
            assert all(reason for reason in rejected.values())
            done = [r for r in results if r.status == "done"]
            assert done and all(r.summary and r.final_tier for r in done)

            # And chunked documents have their map (part) and reduce (combine) hops
            split = [r for r in results if r.parts]
            assert len(split) >= 4, [(r.doc_id, r.input_tokens) for r in results][:5]
            book = batch_ledger(migrated_url, handle.id)
            queries, hops, requests = book["queries"], book["hops"], book["requests"]
            for result in split:
                root = queries[result.query_id]
                assert [h.kind for h in hops[root.id]][:2] == ["route", "combine"]
                assert all(h.status == "done" for h in hops[root.id])
                pieces = [q for q in queries.values() if q.parent_id == root.id]
                parts = [q for q in pieces if q.task["role"] == "part"]
                combines = [q for q in pieces if q.task["role"] == "combine"]
                assert len(parts) == result.parts >= 2
                assert combines, f"{result.doc_id}: no combine query"
                assert len(hops[root.id]) == 1 + 1 + max(q.task["stage"] for q in combines)
                if result.status == "done":
                    final = max(combines, key=lambda q: q.task["stage"])
                    assert root.final_answer == final.final_answer
            # And every other query tells one consistent story, costs adding up
            for query in queries.values():
                if any(h.kind == "combine" for h in hops[query.id]):
                    assert query.total_cost == 0 == sum(h.cost for h in hops[query.id])
                else:
                    assert_journey_consistent(query, hops[query.id], requests)

            # And the batch totals equal the sum of its hops (and of its documents)
            hop_total = sum((h.cost for q in queries.values() for h in hops[q.id]), Decimal(0))
            request_total = sum(
                (r.cost for q in queries.values() for h in hops[q.id] for r in requests[h.id]),
                Decimal(0),
            )
            assert hop_total > 0
            assert client.batches.spent(handle.id) == hop_total == request_total
            assert sum((r.cost for r in results), Decimal(0)) == hop_total

            # When the same batch is submitted again, nothing is paid twice
            count = len(ledger_rows(migrated_url)[0])
            again = client.submit_batch([corpus], name="corpus")
            assert set(again.actions) <= {"kept", "rejected"}, again.actions
            assert again.actions.get("kept") == len(inputs) - len(rejected)
            assert len(ledger_rows(migrated_url)[0]) == count
            assert client.batches.spent(handle.id) == hop_total


def test_failed_documents_are_retried_and_summaries_reused_across_batches(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for index in range(4):
        (notes / f"n{index}.txt").write_text(
            f"Memo {index}. Aldera Systems hired {index + 12} engineers in Lisbon and shipped "
            f"{index + 3} releases. The board, chaired by Marta Kovacs, approved a budget of "
            f"{index + 40} million for the next year. Customer churn fell to {index + 2}%."
        )
    broken = {
        name: SimModel(name, quality=0.9, fault_500=1.0)
        for name in ("sim-small", "sim-medium", "sim-large")
    }
    # Given a batch whose every model call failed
    with running_stack(
        tmp_path, migrated_url, broker_url, sim_config(**broken), **FAIL_AT_ONCE
    ) as (
        stack,
        _,
    ):
        stack.start_worker("-c", "2")
        with Client(stack.settings) as client:
            handle = client.submit_batch([notes], name="retry")
            assert handle.wait(timeout=120).failed == 4
            assert all("failed" in (r.reason or "") for r in handle.results())
    # When the same batch runs again with the models back
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        stack.start_worker("-c", "2")
        with Client(stack.settings) as client:
            again = client.submit_batch([notes], name="retry")
            # Then the failed documents are retried, and now done
            assert again.actions == {"retried": 4}
            assert again.wait(timeout=120).done == 4
            # And another batch over the same texts reuses them and pays nothing
            other = client.submit_batch([notes], name="other")
            assert other.actions == {"reused": 4}
            progress = other.wait(timeout=30)
            assert (progress.done, progress.reused, progress.spent) == (4, 4, Decimal(0))
            assert [r.summary for r in other.results()] == [r.summary for r in again.results()]


@pytest.mark.parametrize("kill_signal", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_killing_the_cli_mid_batch_loses_nothing(
    tmp_path: Path,
    migrated_url: str,
    broker_url: str,
    ledger: object,
    kill_signal: signal.Signals,
) -> None:
    corpus = make_corpus(tmp_path, docs=40, long=1, seed=5)
    slow = {
        name: SimModel(name, quality=q, latency_ms=120, output_tokens=60)
        for name, q in (("sim-small", 0.6), ("sim-medium", 0.85), ("sim-large", 0.97))
    }
    with running_stack(tmp_path, migrated_url, broker_url, sim_config(**slow)) as (stack, _):
        stack.start_worker("-c", "4")
        # Given the CLI following a batch the workers are part way through
        cli = run_cli(stack, tmp_path, "summarize", str(corpus), "--out", "first.jsonl")
        name = wait_for_batch_progress(stack, at_least_done=3)
        # When the CLI is interrupted (Ctrl-C) or killed outright
        cli.send_signal(kill_signal)
        cli.wait(timeout=30)
        output = (tmp_path / "cli.log").read_text()
        if kill_signal == signal.SIGINT:
            assert cli.returncode == 130, output
            assert "interrupted" in output and "keeps running on the workers" in output
        status = run_cli(stack, tmp_path, "batch", "status", name, log_name="status.log")
        assert status.wait(timeout=60) == 0
        assert f"batch {name}" in (tmp_path / "status.log").read_text()
        with Client(stack.settings) as client:
            handle = client.batch(name)
            assert not handle.progress().complete, "the test must interrupt a running batch"
            # Then the batch completes on the workers
            handle.wait(timeout=240)
        # And `routeq batch results` returns every document
        results = run_cli(stack, tmp_path, "batch", "results", name, "--out", "all.jsonl")
        assert results.wait(timeout=60) == 0, (tmp_path / "cli.log").read_text()
        lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
        documents = [line for line in lines if line["type"] == "document"]
        assert sorted(d["id"] for d in documents) == sorted(d.doc_id for d in collect([corpus]))
        assert {d["status"] for d in documents} <= FINAL
        assert lines[-1]["type"] == "totals" and lines[-1]["documents"] == len(documents)


def run_cli(
    stack: Stack, cwd: Path, *args: str, log_name: str = "cli.log"
) -> subprocess.Popen[bytes]:
    log = (cwd / log_name).open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "routeq", *args],
        cwd=cwd,
        env=dict(stack.env, COLUMNS="120"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for_batch_progress(stack: Stack, at_least_done: int) -> str:
    """The name of the (only) batch once it has ``at_least_done`` finished documents."""
    engine = sa.create_engine(str(stack.settings.database_url))
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.text(
                        "SELECT b.name, count(*) FILTER (WHERE q.status = 'done') AS done "
                        "FROM batches b JOIN batch_documents d ON d.batch_id = b.id "
                        "LEFT JOIN queries q ON q.id = d.query_id GROUP BY b.name"
                    )
                ).one_or_none()
            if row is not None and row.done >= at_least_done:
                return str(row.name)
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"no batch reached {at_least_done} done documents in 60s")
