"""The simulated OpenAI-compatible server over real HTTP (no external services needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from routeq.sim import SimConfig, SimModel, SimServer, default_sim_config
from routeq.sim.models import generate

MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Explain what a hash function is."},
]


def _config() -> SimConfig:
    config = default_sim_config(seed=1)
    extra = [
        SimModel(name="always-429", quality=1.0, latency_ms=0, fault_429=1.0, retry_after_s=0.25),
        SimModel(name="always-500", quality=1.0, latency_ms=0, fault_500=1.0),
        SimModel(name="always-broken", quality=1.0, latency_ms=0, fault_malformed=1.0),
        SimModel(name="always-slow", quality=1.0, latency_ms=0, fault_timeout=1.0),
        SimModel(name="flaky", quality=1.0, latency_ms=0, fault_500=0.5),
    ]
    models = dict(config.models)
    models.update({m.name: m for m in extra})
    return SimConfig(seed=config.seed, models=models, timeout_sleep_s=0.2)


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(_config()) as sim:
        yield sim


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as c:
        yield c


def chat(client: httpx.Client, model: str, **extra: object) -> httpx.Response:
    body: dict[str, object] = {"model": model, "messages": MESSAGES}
    body.update(extra)
    return client.post("/chat/completions", json=body)


def test_url_and_port(server: SimServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/v1"


def test_health(server: SimServer) -> None:
    response = httpx.get(server.url.removesuffix("/v1") + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "simulated": True}
    assert response.headers["X-Routeq-Simulated"] == "true"


def test_models_list(client: httpx.Client) -> None:
    response = client.get("/models")
    assert response.status_code == 200
    payload = response.json()
    assert payload["object"] == "list"
    ids = {entry["id"] for entry in payload["data"]}
    assert {"sim-small", "sim-medium", "sim-large", "sim-judge"} <= ids
    assert all(entry["object"] == "model" for entry in payload["data"])


def test_success_shape(server: SimServer, client: httpx.Client) -> None:
    response = chat(client, "sim-large", temperature=0.2)
    assert response.status_code == 200
    assert response.headers["X-Routeq-Simulated"] == "true"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["created"] == 0
    assert body["model"] == "sim-large"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("[sim:sim-large q=")
    assert choice["finish_reason"] in ("stop", "length")

    expected = generate(server.config, "sim-large", MESSAGES, 0)
    assert choice["message"]["content"] == expected.content
    usage = body["usage"]
    assert usage["prompt_tokens"] == expected.prompt_tokens
    assert usage["completion_tokens"] == expected.completion_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_same_question_same_answer(client: httpx.Client) -> None:
    first = chat(client, "sim-medium").json()["choices"][0]["message"]["content"]
    second = chat(client, "sim-medium").json()["choices"][0]["message"]["content"]
    assert first == second


def test_judge_endpoint(client: httpx.Client) -> None:
    answer = "[sim:sim-small q=0.30] I'm sorry, but I can't help with that."
    response = client.post(
        "/chat/completions",
        json={"model": "sim-judge", "messages": [{"role": "user", "content": answer}]},
    )
    verdict = json.loads(response.json()["choices"][0]["message"]["content"])
    assert verdict["score"] == 4


def test_unknown_model_404(client: httpx.Client) -> None:
    response = chat(client, "gpt-nonexistent")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "gpt-nonexistent" in error["message"]


def test_bad_json_400(client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "sim-small"},
        {"model": "sim-small", "messages": []},
        {"model": "sim-small", "messages": "hello"},
        {"messages": MESSAGES},
        {"model": "sim-small", "messages": MESSAGES, "max_tokens": "ten"},
        [1, 2, 3],
    ],
)
def test_invalid_request_400(client: httpx.Client, body: object) -> None:
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_path_404(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post("/completions", json={}).status_code == 404


def test_429_with_retry_after(client: httpx.Client) -> None:
    response = chat(client, "always-429")
    assert response.status_code == 429
    assert float(response.headers["Retry-After"]) == pytest.approx(0.25)
    assert response.headers["X-Routeq-Simulated"] == "true"
    assert "error" in response.json()


def test_500(client: httpx.Client) -> None:
    response = chat(client, "always-500")
    assert response.status_code == 500
    assert "error" in response.json()


def test_malformed_body(client: httpx.Client) -> None:
    response = chat(client, "always-broken")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_timeout_fault_stalls(server: SimServer) -> None:
    with (
        httpx.Client(base_url=server.url, timeout=0.05) as fast_client,
        pytest.raises(httpx.TimeoutException),
    ):
        chat(fast_client, "always-slow")
    with httpx.Client(base_url=server.url, timeout=5.0) as patient_client:
        response = chat(patient_client, "always-slow")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith("[sim:always-slow ")


def test_retry_rerolls_fault(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "retry until it works"}]
    statuses = [
        client.post("/chat/completions", json={"model": "flaky", "messages": messages}).status_code
        for _ in range(20)
    ]
    assert 500 in statuses
    assert 200 in statuses


def test_attempt_counter_reset(server: SimServer, client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "replay me"}]

    def run() -> list[int]:
        return [
            client.post(
                "/chat/completions", json={"model": "flaky", "messages": messages}
            ).status_code
            for _ in range(8)
        ]

    server.reset_attempts()
    first = run()
    server.reset_attempts()
    assert run() == first


def test_max_tokens_truncation(client: httpx.Client) -> None:
    response = chat(client, "sim-large", max_tokens=10)
    assert response.status_code == 200
    body = response.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"]) <= 40
    assert choice["message"]["content"].startswith("[sim:sim-large q=")
    assert body["usage"]["completion_tokens"] == 10


def test_large_max_tokens_no_truncation(server: SimServer, client: httpx.Client) -> None:
    response = chat(client, "sim-large", max_tokens=4096)
    expected = generate(server.config, "sim-large", MESSAGES, 0)
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == expected.content
    assert choice["finish_reason"] == expected.finish_reason


def test_stop_is_idempotent() -> None:
    sim = SimServer(SimConfig(seed=0, models={})).start()
    url = sim.url
    assert httpx.get(url + "/models").json()["data"] == []
    sim.stop()
    sim.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/models", timeout=0.5)
