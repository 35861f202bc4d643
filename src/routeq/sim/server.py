"""OpenAI-compatible HTTP front end for the simulated models.

The router under test talks real HTTP to real providers, so the stand-in
must be a real HTTP server too: that way timeouts, retries, status codes
and broken bodies are exercised through exactly the same client code paths
as in production.  Only the standard library is used so the simulator can
run anywhere the tests run, with nothing to install.

Prompts are never logged: the default per-request logging of
:mod:`http.server` is switched off.
"""

from __future__ import annotations

import collections
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from routeq.sim.identity import IDENTITY_PATH, SERVICE
from routeq.sim.models import (
    SimConfig,
    SimModel,
    SimOutcome,
    complete,
    context_overflow,
    generate,
    truncate_outcome,
)

__all__ = ["SimServer"]

_SIM_HEADER = "X-Routeq-Simulated"
_REQUEST_ID_HEADER = "X-Routeq-Request-Id"
_MALFORMED_BODY = b'{"choices": [ {"message": '
_MAX_BODY_BYTES = 16 * 1024 * 1024


def _decimal(seconds: float) -> str:
    """Format seconds as a plain decimal string (no exponent), as Retry-After parsers expect."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0"


class _RequestError(Exception):
    """An OpenAI-style client error to send back instead of a completion."""

    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type


class SimServer(ThreadingHTTPServer):
    """A threaded OpenAI-compatible chat-completions server backed by :func:`generate`.

    The socket is bound in the constructor (``port=0`` picks a free port), so
    :attr:`url` is known before :meth:`start`.  Handler threads are daemons:
    a request stuck in a simulated timeout never blocks :meth:`stop` or
    interpreter exit.

    Usage::

        with SimServer(default_sim_config()) as sim:
            httpx.post(f"{sim.url}/chat/completions", json=...)

    Each server has a random :attr:`token`, served with the models it has at ``IDENTITY_PATH``
    (see :func:`routeq.sim.identify`): whoever started it can tell its own server from anything
    else listening on a port, another run's simulator included.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        config: SimConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        request_log: Path | None = None,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.config = config
        self.token = secrets.token_hex(16)
        self._attempts: dict[tuple[str, str], int] = {}
        self._attempts_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # What a real provider's billing would show: every chat request received, by the
        # ledger's request id (the X-Routeq-Request-Id header; "-" when absent), in order.
        # Fault tests compare it with the ledger. Ids only, never prompts.
        self.received: list[str] = []
        # Concurrent chat requests per model, now and at most: what a provider's rate limiter
        # sees, so tests can check that a tier's max_concurrency held across its workers.
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        # Per model, when its requests of the last second arrived (``rate_limit_rps``), and how
        # many it refused for going over it.
        self._recent: dict[str, collections.deque[float]] = {}
        self.rate_limited: dict[str, int] = {}
        self._request_log = request_log.open("a", encoding="utf-8") if request_log else None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful when constructed with ``port=0``)."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to give an OpenAI-style client, e.g. ``http://127.0.0.1:4711/v1``."""
        host = str(self.server_address[0])
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}/v1"

    def start(self) -> SimServer:
        """Serve in a background daemon thread; returns ``self`` for chaining."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"routeq-sim-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the socket; safe to call more than once."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
        if self._request_log is not None:
            self._request_log.close()
            self._request_log = None

    def note_request(self, request_id: str, model: str = "-") -> None:
        """Remember a received chat request (and append it to the request log, flushed at once
        so that a killed server's log is complete up to the kill). A log line is the request
        id, the model and the time it arrived (Unix seconds)."""
        with self._attempts_lock:
            self.received.append(request_id)
            if self._request_log is not None:
                self._request_log.write(f"{request_id} {model} {time.time():.4f}\n")
                self._request_log.flush()

    def over_rate_limit(self, model: SimModel) -> bool:
        """Count a request against the model's ``rate_limit_rps``; True when it is over."""
        if model.rate_limit_rps <= 0:
            return False
        now = time.monotonic()
        with self._attempts_lock:
            recent = self._recent.setdefault(model.name, collections.deque())
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= model.rate_limit_rps:
                self.rate_limited[model.name] = self.rate_limited.get(model.name, 0) + 1
                return True
            recent.append(now)
            return False

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ attempts

    def next_attempt(self, model: str, messages: object) -> int:
        """Return how many times this exact (model, messages) was asked before, then count it.

        This is what lets a client's retry of the same request re-roll the
        fault dice while a fresh server replays a run identically.
        """
        canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
        key = (model, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
        with self._attempts_lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        return attempt

    def reset_attempts(self) -> None:
        """Forget all attempt counters, so the next run replays from attempt 0."""
        with self._attempts_lock:
            self._attempts.clear()


def _model_of(body: bytes) -> str:
    """The model a request body names, for the request log ("-" when it names none)."""
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError):
        return "-"
    return model if isinstance(model, str) and model.isprintable() and " " not in model else "-"


class _Handler(BaseHTTPRequestHandler):
    """Per-request handler; all state lives on the :class:`SimServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "routeq-sim/1"
    # Send headers and body in one segment with TCP_NODELAY: otherwise Nagle plus delayed
    # ACKs add ~40 ms per keep-alive request and make latency simulation meaningless.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    @property
    def sim(self) -> SimServer:
        return cast(SimServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence default access logging: request lines and bodies may carry prompts."""

    # ------------------------------------------------------------------ responses

    def _send(
        self,
        status: int,
        body: bytes,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header(_SIM_HEADER, "true")
            for name, value in (extra_headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (typically after a simulated timeout); nothing to do.
            self.close_connection = True

    def _send_json(
        self, status: int, payload: object, extra_headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), extra_headers)

    def _send_error_json(
        self,
        status: int,
        message: str,
        error_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
        self._send_json(status, payload, extra_headers)

    # ------------------------------------------------------------------ routing

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_json(200, {"status": "ok", "simulated": True})
        elif path == IDENTITY_PATH:
            identity = {
                "service": SERVICE,
                "token": self.sim.token,
                "models": list(self.sim.config.models),
            }
            self._send_json(200, identity)
        elif path == "/v1/models":
            data = [self._model_entry(name) for name in self.sim.config.models]
            self._send_json(200, {"object": "list", "data": data})
        elif path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            if name in self.sim.config.models:
                self._send_json(200, self._model_entry(name))
            else:
                self._send_error_json(
                    404, f"The model '{name}' does not exist", "invalid_request_error"
                )
        else:
            self._send_error_json(404, f"Unknown path {path!r}", "invalid_request_error")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            body = self._read_body()
            if path != "/v1/chat/completions":
                raise _RequestError(404, f"Unknown path {path!r}")
            self.sim.note_request(self.headers.get(_REQUEST_ID_HEADER) or "-", _model_of(body))
            self._chat_completions(body)
        except _RequestError as err:
            self._send_error_json(err.status, err.message, err.error_type)

    @staticmethod
    def _model_entry(name: str) -> dict[str, object]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "routeq-sim"}

    def _read_body(self) -> bytes:
        raw_length = self.headers.get("Content-Length")
        try:
            length = int(raw_length) if raw_length is not None else 0
        except ValueError:
            self.close_connection = True
            raise _RequestError(400, "Invalid Content-Length header") from None
        if length < 0 or length > _MAX_BODY_BYTES:
            self.close_connection = True
            raise _RequestError(400, "Request body too large or negative length")
        return self.rfile.read(length) if length else b""

    # ------------------------------------------------------------------ chat completions

    def _parse_request(self, body: bytes) -> tuple[str, list[dict[str, Any]], int | None]:
        """Validate the OpenAI request body; anything off becomes a 400/404 like OpenAI's."""
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _RequestError(400, "Request body is not valid JSON") from None
        if not isinstance(request, dict):
            raise _RequestError(400, "Request body must be a JSON object")

        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise _RequestError(400, "'model' is required and must be a string")

        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _RequestError(400, "'messages' is required and must be a non-empty array")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _RequestError(400, f"messages[{i}] must be an object with a 'role' string")
            content = message.get("content")
            if content is not None and not isinstance(content, (str, list)):
                raise _RequestError(400, f"messages[{i}].content must be a string or an array")

        max_tokens = request.get("max_tokens")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise _RequestError(400, "'max_tokens' must be a positive integer")
        temperature = request.get("temperature")
        if temperature is not None and (
            not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
        ):
            raise _RequestError(400, "'temperature' must be a number")
        if request.get("stream") is True:
            raise _RequestError(400, "Streaming is not supported by the simulator")

        if model not in self.sim.config.models:
            raise _RequestError(404, f"The model '{model}' does not exist")
        return model, messages, max_tokens

    def _chat_completions(self, body: bytes) -> None:
        model_name, messages, max_tokens = self._parse_request(body)
        with self.sim._attempts_lock:
            now = self.sim.in_flight.get(model_name, 0) + 1
            self.sim.in_flight[model_name] = now
            self.sim.max_in_flight[model_name] = max(now, self.sim.max_in_flight.get(model_name, 0))
        try:
            self._complete_chat(model_name, messages, max_tokens)
        finally:
            with self.sim._attempts_lock:
                self.sim.in_flight[model_name] -= 1

    def _complete_chat(
        self, model_name: str, messages: list[dict[str, Any]], max_tokens: int | None
    ) -> None:
        config = self.sim.config
        model = config.models[model_name]
        overflow = context_overflow(model, messages, max_tokens)
        if overflow is not None:  # refused before any work, as real servers validate first
            self._send_json(400, overflow)
            return
        if self.sim.over_rate_limit(model):
            self._send_error_json(
                429,
                f"Rate limit of {model.rate_limit_rps:g} requests per second reached (simulated)",
                "rate_limit_error",
                {"Retry-After": _decimal(model.retry_after_s)},
            )
            return
        attempt = self.sim.next_attempt(model_name, messages)

        if model.latency_ms > 0:
            time.sleep(model.latency_ms / 1000.0)

        outcome = generate(config, model_name, messages, attempt)
        if outcome.fault == "429":
            self._send_error_json(
                429,
                "Rate limit reached (simulated)",
                "rate_limit_error",
                {"Retry-After": _decimal(model.retry_after_s)},
            )
            return
        if outcome.fault == "500":
            message = "Internal server error (simulated)"
            if model.echo_auth:  # like a provider that quotes the key it was given
                credentials = self.headers.get("Authorization") or self.headers.get("x-api-key")
                message += f"; request credentials: {credentials}"
            self._send_error_json(500, message, "server_error")
            return
        if outcome.fault == "malformed":
            self._send(200, _MALFORMED_BODY)
            self.close_connection = True
            return
        if outcome.fault == "timeout":
            # Stall, then answer normally: the client should have given up by now.
            time.sleep(config.timeout_sleep_s)
            outcome = complete(config, model_name, messages)

        outcome = truncate_outcome(outcome, max_tokens)
        self._send_json(200, self._completion_body(model_name, messages, attempt, outcome))

    @staticmethod
    def _completion_body(
        model: str, messages: object, attempt: int, outcome: SimOutcome
    ) -> dict[str, object]:
        seed = json.dumps([model, messages, attempt], sort_keys=True, default=str)
        completion_id = "chatcmpl-sim-" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:24]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": outcome.content},
                    "finish_reason": outcome.finish_reason,
                }
            ],
            **({} if outcome.usage is None else {"usage": outcome.usage}),
        }
