"""`[judge.verifier]` through the real steps on the real ledger (the in-process pipeline;
Postgres only): a trained verifier of cheap answers fails the one with a miscalculation, which
escalates, and keeps the clean one; a missing artifact stops the runtime from being built."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from stack import sim_config
from test_inprocess_pipeline import pipeline, run_one

from routeq.errors import ConfigError
from routeq.learned import artifact as artifacts
from routeq.learned.cascade import train_verifier
from routeq.ledger import Ledger
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

SLIP = "5*6 = <<5*6=37>>37 eggs.\n#### 37"
CLEAN = "5*6 = <<5*6=30>>30 eggs.\n#### 30"
# The cheap tier's model answers the query holding a cue with the scripted text.
CHEAP = SimModel(
    "sim-small", quality=1.0, latency_ms=0, replies=(("zqslip", SLIP), ("zqclean", CLEAN))
)
ALL_CHEAP = [{"name": "all-cheap", "tier": "cheap"}]


def _verifier(path: Path) -> Path:
    """A verifier trained on clean (right) and miscalculated (wrong) egg answers of the cheap
    tier, as the ledger would hold them (the simulator's marker in front)."""
    rng = random.Random(3)
    questions, answers, good = [], [], []
    for _ in range(80):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        right = rng.random() < 0.5
        result = a * b if right else a * b + rng.randint(1, 9)
        questions.append(f"A box holds {a} rows of {b} eggs. How many eggs?")
        answers.append(
            f"[sim:sim-small q=1.00] {a}*{b} = <<{a}*{b}={result}>>{result} eggs.\n#### {result}"
        )
        good.append(float(right))
    artifacts.save(train_verifier(questions, answers, good), path)
    return path


def test_a_cheap_answer_the_verifier_distrusts_escalates(ledger: Ledger, tmp_path: Path) -> None:
    verifier = {"artifact": str(_verifier(tmp_path / "v.rqa")), "min_p_good": 0.5}
    sim = sim_config(**{"sim-small": CHEAP})
    with pipeline(ledger, sim, routing={"rules": ALL_CHEAP}, judge={"verifier": verifier}) as (
        runner,
        _,
    ):
        slipped = run_one(runner, "A box holds 5 rows of 6 eggs. How many eggs? zqslip")
        clean = run_one(runner, "A box holds 5 rows of 6 eggs. How many eggs? zqclean")

    first_judge = slipped.hops[2]
    assert first_judge.kind.value == "judge" and first_judge.passed is False
    assert (first_judge.reason or "").startswith("verifier: the answer looks wrong (P(good) 0.")
    assert first_judge.details["source"] == "verifier"
    assert slipped.hops[3].tier == "mid"  # escalated one tier up
    assert [h.kind.value for h in clean.hops] == ["route", "call", "judge"]
    assert clean.hops[2].passed is True and clean.hops[1].tier == "cheap"


def test_a_missing_verifier_artifact_stops_the_runtime(ledger: Ledger, tmp_path: Path) -> None:
    missing = {"artifact": str(tmp_path / "gone.rqa")}
    with (
        pytest.raises(ConfigError, match=r"gone\.rqa does not exist"),
        pipeline(ledger, routing={"rules": ALL_CHEAP}, judge={"verifier": missing}),
    ):
        pass
