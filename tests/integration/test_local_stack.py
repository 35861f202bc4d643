"""The embedded default on one machine: the local stack's simulated models, its embedded servers,
and several routeq runs side by side.

These tests bind the default simulator port (127.0.0.1:8765) or start the embedded Postgres and
Redis under a temporary state directory, as a user's ``routeq summarize`` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from routeq import Client
from routeq.config import DEFAULT_SIM_URL, Settings, load_settings
from routeq.embedded import stop
from routeq.errors import RouteqError
from routeq.ledger import Ledger
from routeq.local import local_stack
from routeq.sim import SimServer, default_sim_config, identify

pytestmark = pytest.mark.integration

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SIM_PORT = urlsplit(DEFAULT_SIM_URL).port or 8765


class ForeignServer(ThreadingHTTPServer):
    """Somebody else's HTTP service on the simulator's default port: it answers every request
    like an OpenAI endpoint would (so a client that trusts it gets an 'answer') and keeps the
    bodies it was sent (other test sessions on this machine may call the default port too)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        try:
            super().__init__(("127.0.0.1", SIM_PORT), _ForeignHandler)
        except OSError as error:
            pytest.fail(f"this test needs 127.0.0.1:{SIM_PORT} free to put a server on it: {error}")


class _ForeignHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        server = self.server
        assert isinstance(server, ForeignServer)
        length = int(self.headers.get("Content-Length") or 0)
        server.bodies.append(self.rfile.read(length))
        body = json.dumps(
            {
                "id": "foreign",
                "object": "chat.completion",
                "model": "whatever",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "8"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def foreign_server() -> Iterator[ForeignServer]:
    server = ForeignServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def embedded_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder with nothing configured, as a user's first run; whatever embedded server
    is still running under it at the end is stopped.

    Not under pytest's tmp_path: as root the embedded Postgres runs as another user, who must
    traverse the folder's parents, and every pytest session that starts resets pytest's base
    folder to mode 0700 (so another session starting would lock the server out of its data)."""
    folder = Path(tempfile.mkdtemp(prefix="routeq-test-"))
    monkeypatch.chdir(folder)
    try:
        yield folder
    finally:
        for state in [folder / ".routeq", *folder.glob("*/.routeq")]:
            if state.exists():
                stop(Settings(state_dir=state))
        shutil.rmtree(folder, ignore_errors=True)


def configured(ledger: Ledger, broker_url: str, tmp_path: Path) -> Settings:
    """The default ladder (simulated, on the default URL) on the test's Postgres and Redis."""
    database_url = ledger.engine.url.render_as_string(hide_password=False)
    return load_settings(
        database_url=database_url, broker_url=broker_url, state_dir=tmp_path / "st"
    )


# -- the simulated models ------------------------------------------------------------------------


def test_a_foreign_server_on_the_default_port_gets_no_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
    broker_url: str,
    foreign_server: ForeignServer,
) -> None:
    # Given something that is not routeq's simulator answering on 127.0.0.1:8765
    monkeypatch.chdir(tmp_path)
    settings = configured(ledger, broker_url, tmp_path)

    # When the local stack runs a query on the default (simulated) ladder
    marker = uuid.uuid4().hex
    with local_stack(settings, workers=1) as stack, Client(stack.settings) as client:
        result = client.submit(f"What is 3 plus 5? (ref {marker})").wait(timeout=60)

    # Then the answer comes from routeq's own simulator, and the foreign server never saw the
    # query (neither the call nor the judge's prompt)
    assert result.ok, result.reason
    assert result.answer is not None and result.answer.startswith("[sim:"), result.answer
    assert not [body for body in foreign_server.bodies if marker.encode() in body]
    assert all(tier.base_url != DEFAULT_SIM_URL for tier in stack.settings.tiers)


def test_a_routeq_sim_server_on_the_default_port_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger: Ledger, broker_url: str
) -> None:
    # Given routeq's simulator with the default models on 127.0.0.1:8765 (`routeq sim-server`)
    monkeypatch.chdir(tmp_path)
    settings = configured(ledger, broker_url, tmp_path)
    try:
        server = SimServer(default_sim_config(), port=SIM_PORT)
    except OSError as error:
        pytest.fail(f"this test needs 127.0.0.1:{SIM_PORT} free to put a simulator on it: {error}")
    # When the local stack runs a query on the default ladder
    with server, local_stack(settings, workers=1) as stack, Client(stack.settings) as client:
        result = client.submit("What is 4 plus 4?").wait(timeout=60)
    # Then the work went to that simulator, and the run started none of its own
    assert result.ok, result.reason
    assert stack.sim_url == DEFAULT_SIM_URL
    assert all(tier.base_url == DEFAULT_SIM_URL for tier in stack.settings.tiers)
    assert not any("simulated model server" in what for what in stack.started), stack.started
    assert len(server.received) >= 2  # the call and the judge's


@pytest.mark.slow
def test_two_local_stacks_at_once_do_not_interfere(embedded_state: Path) -> None:
    # Given two routeq runs in two folders of one machine, both on the embedded default
    # (and no `routeq sim-server` on the default port, which both would rightly share)
    assert identify(DEFAULT_SIM_URL) is None, f"a routeq simulator is serving {DEFAULT_SIM_URL}"
    with ExitStack() as first_run, ExitStack() as second_run:
        first = first_run.enter_context(
            local_stack(Settings(state_dir=embedded_state / "first" / ".routeq"), workers=1)
        )
        second = second_run.enter_context(
            local_stack(Settings(state_dir=embedded_state / "second" / ".routeq"), workers=1)
        )
        # Then each has simulated models of its own
        first_urls = {tier.base_url for tier in first.settings.tiers}
        second_urls = {tier.base_url for tier in second.settings.tiers}
        assert len(first_urls) == len(second_urls) == 1
        assert first_urls != second_urls
        with Client(first.settings) as client:
            assert client.submit("What is 1 plus 1?").wait(timeout=60).ok
        # When the first run ends while the second goes on
        first_run.close()
        # Then the second still answers
        with Client(second.settings) as client:
            result = client.submit("What is 2 plus 2?").wait(timeout=60)
        assert result.ok, result.reason
        assert result.answer is not None and result.answer.startswith("[sim:")


@pytest.mark.slow
def test_two_runs_in_one_folder_share_its_servers_until_the_last_ends(
    embedded_state: Path,
) -> None:
    # Given two runs in the same folder: the first starts the embedded servers, the second uses them
    settings = Settings(state_dir=embedded_state / ".routeq")
    with ExitStack() as first_run, ExitStack() as second_run:
        first = first_run.enter_context(local_stack(settings, workers=1))
        second = second_run.enter_context(local_stack(settings, workers=1))
        assert any("postgres" in what for what in first.started), first.started
        with Client(first.settings) as client:
            assert client.submit("What is 5 plus 5?").wait(timeout=60).ok
        # When the run that started the servers ends first
        first_run.close()
        # Then the other's database, broker and models are still there
        with Client(second.settings) as client:
            result = client.submit("What is 6 plus 6?").wait(timeout=60)
        assert result.ok, result.reason
    # And the last run out stopped what the first had started
    assert stop(settings) == []


# -- the embedded default ------------------------------------------------------------------------


def test_client_local_runs_a_query_and_stops_what_it_started(embedded_state: Path) -> None:
    settings = Settings(state_dir=embedded_state / ".routeq")
    with Client.local(settings) as client:
        started = list(client.started)
        result = client.submit("What is the capital of France?").wait(timeout=60)
    assert result.ok, result.reason
    assert any("postgres" in what for what in started), started
    assert any("worker groups" in what for what in started), started
    assert stop(settings) == [], "Client.local() left embedded servers running"


def test_submit_in_a_fresh_folder_migrates_the_embedded_database(embedded_state: Path) -> None:
    # Given a folder where routeq never ran (no config, no .routeq)
    # When a query is submitted from the command line
    result = subprocess.run(
        [sys.executable, "-m", "routeq", "submit", "hello there"],
        cwd=embedded_state,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the embedded database got its schema and the query was accepted
    assert result.returncode == 0, result.stderr[-3000:]
    assert UUID_RE.match(result.stdout.strip()), result.stdout


@pytest.mark.slow
def test_demo_runs_on_the_local_stack_and_stops_it(embedded_state: Path) -> None:
    # When the single-query demo runs in a fresh folder
    result = subprocess.run(
        [sys.executable, "-m", "routeq", "demo", "--queries", "4"],
        cwd=embedded_state,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    # Then it ran on the local stack: embedded servers, worker groups with beat, and a seeded
    # simulator of its own (not the default port)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "started embedded postgres" in output, output
    assert "worker groups and beat" in output, output
    sim = re.search(r"started simulated model server on http://127\.0\.0\.1:(\d+)/v1", output)
    assert sim is not None and int(sim.group(1)) != SIM_PORT, output
    assert "queries: 4" in output and "done: 4" in output, output
    # And stopped everything it started
    assert stop(Settings(state_dir=embedded_state / ".routeq")) == []


def test_client_local_that_cannot_start_leaves_nothing_running(embedded_state: Path) -> None:
    # Given a tier on the simulator URL naming a model no simulator here has
    settings = load_settings(state_dir=embedded_state / ".routeq")
    tiers = [settings.tiers[0].model_copy(update={"model": "sim-nope"}), *settings.tiers[1:]]
    broken = settings.model_copy(update={"tiers": tiers})
    # When the local stack is asked for, it says which model is missing
    with pytest.raises(RouteqError, match=r"routeq's simulator does not have \(sim-nope;"):
        Client.local(broken, workers=1)
    # And stops the embedded servers it had started on the way
    assert (embedded_state / ".routeq" / "postgres").exists()
    assert stop(settings) == []


def test_submit_and_wait_in_a_fresh_folder_answers_on_its_own_workers(
    embedded_state: Path,
) -> None:
    # When a user's first command is `routeq submit --wait`, with nothing configured or running
    result = subprocess.run(
        [sys.executable, "-m", "routeq", "submit", "--wait", "--timeout", "60", "--json", "hi"],
        cwd=embedded_state,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Then the command's own workers and simulator answer it, and are gone afterwards
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout)
    assert answer["status"] == "done", answer
    assert answer["answer"].startswith("[sim:"), answer
    assert "worker groups and beat" in result.stderr
    assert stop(Settings(state_dir=embedded_state / ".routeq")) == []
