"""A simulator says who it is; anything else listening on a port is not taken for one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from routeq.sim import SimServer, default_sim_config, identify


def test_a_simulator_identifies_itself_with_its_own_token_and_models() -> None:
    with SimServer(default_sim_config()) as first, SimServer(default_sim_config()) as second:
        found_first, found_second = identify(first.url), identify(second.url)
    assert found_first is not None and found_second is not None
    assert found_first.token == first.token
    assert found_second.token == second.token
    assert first.token != second.token
    assert found_first.models == {"sim-small", "sim-medium", "sim-large", "sim-judge"}


class _Always200(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"status": "ok", "service": "something-else", "token": "t", "models": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def foreign_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Always200)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_another_http_service_is_not_a_simulator(foreign_url: str) -> None:
    assert identify(foreign_url) is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_nothing_listening_is_not_a_simulator() -> None:
    assert identify(f"http://127.0.0.1:{_free_port()}/v1") is None


@pytest.mark.parametrize("reply", [b"not http at all\r\n\r\n", b""], ids=["garbage", "silent"])
def test_a_listener_that_does_not_speak_http_is_not_a_simulator(reply: bytes) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                if reply:
                    connection.sendall(reply)
                else:
                    time.sleep(1.0)  # says nothing until the caller's timeout

        thread = threading.Thread(target=serve)
        thread.start()
        started = time.monotonic()
        assert identify(f"http://127.0.0.1:{port}/v1", timeout_s=0.3) is None
        assert time.monotonic() - started < 1.0
        thread.join()


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1:21/v1", "http:///v1"])
def test_a_url_that_is_not_http_is_not_a_simulator(url: str) -> None:
    assert identify(url) is None
