"""The cascade verifier: answer features computed by hand, the verifier learns to distrust
broken answers, and the cascade curve on generated responses beats random."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from routeq.evaluation.harness import PromptLength, cross_validated, references
from routeq.evaluation.outcomes import Example, Outcome
from routeq.judges.answer_features import NAMES, answer_features, evaluate
from routeq.learned import artifact as artifacts
from routeq.learned.artifact import Artifact, ArtifactError
from routeq.learned.cascade import (
    KIND,
    CascadeTrainer,
    CombinedTrainer,
    load_verifier,
    train_verifier,
)


def features(question: str, answer: str) -> dict[str, float]:
    return dict(zip(NAMES, answer_features(question, answer), strict=True))


def test_arithmetic_is_recomputed_without_running_code() -> None:
    assert evaluate("8*5*60/100") == 24
    assert evaluate("(12 / 20) x 100") == 60
    assert evaluate("$1,200 + 30%") == pytest.approx(1200.3)
    assert evaluate("2 ** 1000") is None  # not one of the four operations
    assert evaluate("__import__('os').system('true')") is None
    assert evaluate("1/0") is None


def test_a_clean_worked_answer() -> None:
    got = features(
        "Tom has 3 bags of 4 apples and eats 2. How many are left?",
        "He has 3*4 = <<3*4=12>>12 apples. After eating 2: 12-2 = <<12-2=10>>10.\n#### 10",
    )
    assert got["has_final"] == 1 and got["unfinished"] == 0
    assert got["steps"] == 2 and got["wrong_steps"] == 0
    assert got["final_is_last_result"] == 1
    assert got["final_fractional"] == 0 and got["final_in_question"] == 0
    assert got["unused_question_numbers"] == 0  # 3, 4 and 2 all used


def test_a_broken_answer() -> None:
    got = features(
        "Tom has 3 bags of 4 apples and eats 2. How many are left?",
        "He has 3*4 = <<3*4=13>>13 apples and then 13 / 2 = <<13/2",
    )
    assert got["has_final"] == 0 and got["unfinished"] == 1
    assert got["steps"] == 1 and got["wrong_steps"] == 1 and got["wrong_share"] == 1
    assert got["unused_question_numbers"] == pytest.approx(0.0)
    slip = features("Half of 9 people?", "9 / 2 = 4.5 people.\nThe answer is 4.5")
    assert slip["final_fractional"] == 1 and slip["wrong_steps"] == 0


def _responses(n: int, seed: int) -> list[Example]:
    """The weak model's answer is right when it finishes cleanly, wrong when it slips or stops;
    the strong model is right 90% of the time."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        question = f"A box holds {a} rows of {b} eggs. How many eggs are in {a} such rows?"
        kind = rng.choice(["clean", "slip", "cut"])
        if kind == "clean":
            answer = f"{a}*{b} = <<{a}*{b}={a * b}>>{a * b} eggs.\n#### {a * b}"
        elif kind == "slip":
            answer = f"{a}*{b} = <<{a}*{b}={a * b + 7}>>{a * b + 7} eggs.\n#### {a * b + 7}"
        else:
            answer = f"There are {a} rows, so {a}*{b} = <<{a}*"
        weak_right = kind == "clean"
        examples.append(
            Example(
                id=f"c-{seed}-{i}",
                prompt=question,
                outcomes={
                    "weak": Outcome(float(weak_right), answer),
                    "strong": Outcome(float(rng.random() < 0.9), "..."),
                },
            )
        )
    return examples


def test_verifier_trusts_clean_answers_and_round_trips(tmp_path: Path) -> None:
    train = _responses(90, 1)
    trained = train_verifier(
        [e.prompt for e in train],
        [e.outcomes["weak"].response or "" for e in train],
        [e.score("weak") for e in train],
    )
    saved = artifacts.save(trained, tmp_path / "v.rqa")
    verifier = load_verifier(artifacts.load(tmp_path / "v.rqa", KIND))
    assert saved.metadata["examples"] == 90
    q = "A box holds 5 rows of 6 eggs. How many eggs are in 5 such rows?"
    clean, slip, cut = verifier.p_good(
        [q, q, q],
        [
            "5*6 = <<5*6=30>>30 eggs.\n#### 30",
            "5*6 = <<5*6=37>>37 eggs.\n#### 37",
            "There are 5 rows, so 5*6 = <<5*",
        ],
    )
    assert clean > 0.8 and slip < 0.3 and cut < 0.3


def test_verifier_with_other_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.rqa"
    artifacts.save(Artifact(KIND, ("good",), {"mean": [0.0]}, {"features": ["old"]}), path)  # type: ignore[dict-item]
    with pytest.raises(ArtifactError, match="other features"):
        load_verifier(artifacts.load(path, KIND))


def test_cascade_curve_on_held_out_folds_beats_random_and_the_pre_router() -> None:
    examples = _responses(150, 2)
    cascade = cross_validated(CascadeTrainer(), examples, "weak", "strong", 3, 0)
    random, oracle = references(examples, "weak", "strong")
    # The answers give themselves away: near the oracle (0.75 here: the strong model is wrong
    # on a tenth of what it gets), far above random (0.5).
    assert random.summary.apgr == pytest.approx(0.5)
    assert cascade.summary.apgr > 0.9 * oracle.summary.apgr
    combined = cross_validated(CombinedTrainer(PromptLength()), examples, "weak", "strong", 3, 0)
    assert combined.name == "prompt-length + cascade (3-fold, seed 0)"
    assert combined.summary.apgr > 0.55


def test_cascade_needs_the_weak_responses() -> None:
    bare = [
        Example(f"b{i}", "q", {"weak": Outcome(float(i % 2)), "strong": Outcome(1.0)})
        for i in range(10)
    ]
    with pytest.raises(ValueError, match="no example carries weak's response"):
        CascadeTrainer().train(bare, "weak", "strong")
