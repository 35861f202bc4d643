"""A trained policy routes real queries through real workers, and its version lands on the hops.

A small router is trained in the test on the generated outcomes the unit tests learn from
(easy prompts both models get right, hard ones only the strong one), configured as the
stack's ``[routing.policy]``, and real ``routeq worker`` processes on Redis and Postgres route
a handful of easy and hard queries with it. The expectation is taken from the policy's own
``decide`` in the test process first, so the ledger is checked against what the artifact
says, not against a hope. A worker given a missing or corrupt artifact refuses to start.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from audit import assert_journey_consistent, ledger_rows
from stack import ladder, running_stack, sim_config

from routeq import Client
from routeq.config import Settings, write_config
from routeq.learned.embeddings import shared_embedder
from routeq.learned.policies import LearnedPolicy
from routeq.policies.base import Decision, QueryView
from routeq.policies.registry import build_configured_policy
from routeq.tokens import count_tokens
from routeq.training import TrainedRouter, train_router

pytestmark = pytest.mark.integration

# The artifact predicts "weak" and "strong"; the ladder's cheapest and top tiers stand for them.
TIER_LABELS = {"cheap": "weak", "frontier": "strong"}
# On this data the predicted gain of the strong model is about 0.6-0.75 for a hard prompt and
# under 0.25 for an easy one; with the ladder's prices (cheap costs 0.036 of frontier) the
# strong tier wins when the gain exceeds 0.35 * 0.964 = 0.34. The tests check it per query.
COST_WEIGHT = 0.35
# In the style of the generated data, none of them a training prompt.
EASY = [
    "What is 12 plus 30?",
    "Say hello to Bo.",
    "Add 7 and 41.",
    "What colour is the sky on a clear day, Di?",
]
HARD = [
    "Prove that the integral of x^5 from 0 to 17 converges, and compute its exact value.",
    "Derive the closed form of the recurrence f(n) = 3 f(n-1) - 5 f(n-2) with f(0)=1.",
    "A train leaves at 4:00 going 60 km/h; another leaves 4 hours later at twice the speed."
    " When and where does the second overtake the first, if the track has 12 stations?",
]


def _generated_outcomes() -> ModuleType:
    """tests/unit/generated_outcomes.py, loaded from its path: the unit tests import it by name
    from their own directory, which is not on sys.path when only this directory is collected.
    Loaded under a name of its own, so it never shadows the unit tests' copy."""
    path = Path(__file__).resolve().parents[1] / "unit" / "generated_outcomes.py"
    spec = importlib.util.spec_from_file_location("routeq_test_generated_outcomes", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(kind: str, out: Path) -> TrainedRouter:
    """A small router of ``kind`` on 160 generated examples. expected-gain reads words and the
    prompt's shape only (no embedding model to load); knn needs the embeddings."""
    examples = _generated_outcomes().generated(160, seed=1)
    options: dict[str, Any] = {"blocks": ["words", "shape"]} if kind == "expected-gain" else {}
    embedder = None if kind == "expected-gain" else shared_embedder()
    return train_router(
        kind,
        examples,
        ["weak", "strong"],
        out,
        embedder=embedder,
        options=options,
        source="generated",
        folds=0,  # no held-out measurement: this test is about routing, not about the model
    )


def policy_section(kind: str, artifact: Path) -> dict[str, Any]:
    assert artifact.is_absolute()  # the workers' working directory is not the test's
    return {
        "name": kind,
        "artifact": str(artifact),
        "cost_weight": COST_WEIGHT,
        "tiers": TIER_LABELS,
    }


def expected_decisions(settings: Settings) -> dict[str, Decision]:
    """What the configured policy decides for each query, one query at a time as the route
    step asks it; and the check that those decisions are the ones this test is about."""
    policy = build_configured_policy(settings)
    assert isinstance(policy, LearnedPolicy)
    decisions = {text: policy.decide(QueryView(text, count_tokens(text))) for text in EASY + HARD}
    wrong = {
        text: (decision.tier, decision.score)
        for text, decision in decisions.items()
        if decision.tier != ("frontier" if text in HARD else "cheap")
    }
    assert not wrong, f"the trained policy itself does not route as the test expects: {wrong}"
    return decisions


def assert_quality_close(recorded: Mapping[str, float], expected: Mapping[str, float]) -> None:
    assert set(recorded) == set(expected) == set(TIER_LABELS), recorded
    for tier, quality in expected.items():
        assert recorded[tier] == pytest.approx(quality, abs=1e-3), (tier, recorded, expected)


@pytest.mark.parametrize("kind", ["expected-gain", pytest.param("knn", marks=pytest.mark.slow)])
def test_a_trained_policy_routes_through_real_workers_and_its_version_is_on_every_route_hop(
    kind: str, tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    # Given a router trained on the generated outcomes, configured for the workers
    trained = train(kind, tmp_path / "router.rqa")
    version = f"{trained.artifact.version}-w{COST_WEIGHT:g}"
    routing = {"policy": policy_section(kind, trained.path)}
    with running_stack(tmp_path, migrated_url, broker_url, sim_config(), routing=routing) as (
        stack,
        _,
    ):
        expected = expected_decisions(stack.settings)
        stack.start_worker("--concurrency", "2")
        # When easy and hard queries go through the real pipeline
        with Client(stack.settings) as client:
            handles = client.submit_many(EASY + HARD)
            results = [handle.wait(timeout=120) for handle in handles]

    assert all(result.status == "done" for result in results), [
        (r.query_id, r.reason) for r in results if not r.ok
    ]
    queries, hops, requests = ledger_rows(migrated_url)
    assert sorted(q.text for q in queries.values()) == sorted(EASY + HARD)
    for query in queries.values():
        assert_journey_consistent(query, hops[query.id], requests)
        route, first_call = hops[query.id][0], hops[query.id][1]
        decision = expected[query.text]
        # Then every route hop names the trained policy, its artifact's version and weight...
        assert (route.kind, route.policy, route.policy_version) == ("route", kind, version)
        assert route.policy_score == pytest.approx(decision.score, abs=1e-3), query.text
        # ...the tier the policy chose: the top mapped tier for hard queries, cheap for easy
        want = "frontier" if query.text in HARD else "cheap"
        assert route.tier == want, (query.text, route.tier, route.reason)
        assert (first_call.kind, first_call.tier) == ("call", want), query.text
        # ...and the predicted quality of each tier it chose among
        assert route.details["cost_weight"] == COST_WEIGHT
        assert_quality_close(route.details["quality"], decision.details["quality"])
        assert route.reason.startswith("predicted quality ") and f" on {want}" in route.reason


# --- a worker refuses an artifact it cannot route with ------------------------------------


def _corrupt(path: Path) -> str:
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    return f"error: {path} is not a readable routeq artifact"


def _missing(path: Path) -> str:
    return f"error: trained expected-gain artifact {path} does not exist"


def run_to_exit(
    argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in its own process group; on a timeout (a worker that did start) kill the
    whole group, so no Celery child of a supervisor outlives the test, and fail."""
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the worker did not exit in {timeout_s:g} s:\n{(stdout + stderr)[-3000:]}")
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


@pytest.mark.parametrize("damage", [_missing, _corrupt], ids=["missing", "corrupt"])
@pytest.mark.parametrize("supervise", ["--supervise", "--no-supervise"])
def test_a_worker_with_a_missing_or_corrupt_artifact_refuses_to_start_naming_the_file(
    damage: Callable[[Path], str], supervise: str, tmp_path: Path
) -> None:
    # Given a config whose trained policy points at a file that is not a usable artifact (no
    # Redis or Postgres needed: the worker must stop before it connects to either)
    artifact = tmp_path / "models" / "router.rqa"
    artifact.parent.mkdir()
    reason = damage(artifact)
    settings = Settings.model_validate(
        {
            "tiers": ladder("http://127.0.0.1:9"),
            "routing": {"policy": policy_section("expected-gain", artifact)},
            "state_dir": tmp_path / "state",
        }
    )
    config = write_config(settings, tmp_path / "routeq.toml")
    env = dict(
        os.environ,  # without the developer's ROUTEQ_* variables (conftest removed them)
        ROUTEQ_CONFIG=str(config),
        ROUTEQ_DATABASE_URL="postgresql+psycopg://routeq@127.0.0.1:9/routeq",
        ROUTEQ_BROKER_URL="redis://127.0.0.1:9/0",
    )
    # When `routeq worker` starts it (supervised, the default, or exec'ing Celery)
    started = time.monotonic()
    finished = run_to_exit(
        [sys.executable, "-m", "routeq", "worker", "-Q", "route", "-c", "1", supervise],
        env=env,
        cwd=tmp_path,
    )
    # Then it exits 4 (a setup error) before consuming anything, and says which file and why
    output = finished.stdout + finished.stderr
    assert finished.returncode == 4, (finished.returncode, output[-3000:])
    assert "routeq worker: cannot start\n" + reason in finished.stderr, finished.stderr[-3000:]
    assert "restart" not in output  # the supervisor passed the refusal on instead of retrying
    assert "Traceback" not in output
    assert " ready." not in output
    assert time.monotonic() - started < 30
