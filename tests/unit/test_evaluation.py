"""The evaluation harness's numbers against values computed by hand, and its outcome files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routeq.errors import UsageError
from routeq.evaluation.curve import curve, oracle_scores, random_curve, summarise
from routeq.evaluation.folds import k_folds
from routeq.evaluation.outcomes import OutcomeFileError, models_of, parse_outcomes, read_outcomes

# Four prompts: the weak model gets the last two right, the strong one the first three.
WEAK = [0.0, 0.0, 1.0, 1.0]  # mean 0.5
STRONG = [1.0, 1.0, 1.0, 0.0]  # mean 0.75: a gap of 0.25
SCORES = [0.9, 0.1, 0.5, 0.3]  # the router's order: prompt 0, 2, 3, 1

SHARED = Path(__file__).resolve().parents[3] / "shared" / "eval" / "routellm"


def test_the_curve_and_its_numbers_match_a_hand_computation() -> None:
    points = curve(WEAK, STRONG, SCORES)
    # sending 0, 1, 2, 3, 4 prompts to the strong model, in the router's order
    assert [p.strong_share for p in points] == [0, 0.25, 0.5, 0.75, 1]
    assert [p.quality for p in points] == [0.5, 0.75, 0.75, 0.5, 0.75]
    assert [p.pgr for p in points] == [0, 1, 1, 0, 1]
    summary = summarise(points, strong_quality=0.75)
    assert summary.apgr == pytest.approx(0.125 + 0.25 + 0.125 + 0.125)
    assert summary.cpt50 == pytest.approx(0.125)  # halfway to the first point
    assert summary.cpt80 == pytest.approx(0.2)
    # 95% of 0.75 is 0.7125: 85% of the way from quality 0.5 to 0.75
    assert summary.share_for_95pct_strong == pytest.approx(0.2125)


def test_the_oracle_sends_the_prompts_the_strong_model_gains_on_first() -> None:
    points = curve(WEAK, STRONG, oracle_scores(WEAK, STRONG))
    # prompts 0 and 1 tie on a gain of 1 and move together; then 2 (no gain); then 3 (a loss)
    assert [p.strong_share for p in points] == [0, 0.5, 0.75, 1]
    assert [p.pgr for p in points] == [0, 2, 2, 1]  # the oracle beats the strong model
    summary = summarise(points, strong_quality=0.75)
    assert summary.apgr == pytest.approx(0.5 + 0.5 + 0.375)
    assert summary.cpt50 == pytest.approx(0.125)


def test_the_random_router_is_the_diagonal() -> None:
    summary = summarise(random_curve(WEAK, STRONG), strong_quality=0.75)
    assert summary.apgr == pytest.approx(0.5)
    assert summary.cpt50 == pytest.approx(0.5) and summary.cpt80 == pytest.approx(0.8)
    assert summary.share_for_95pct_strong == pytest.approx(0.85)


def test_prompts_with_equal_scores_move_together() -> None:
    points = curve(WEAK, STRONG, [0.5] * 4)
    assert [p.strong_share for p in points] == [0, 1]
    assert summarise(points, 0.75).apgr == pytest.approx(0.5)


def test_a_strong_model_no_better_than_the_weak_one_has_no_gap_to_recover() -> None:
    with pytest.raises(ValueError, match="not better than the weak one"):
        curve([1.0, 0.0], [0.0, 0.0], [1.0, 0.0])


def test_k_folds_test_every_example_once_and_repeat_with_the_seed() -> None:
    ids = [f"p{i}" for i in range(200)]
    folds = k_folds(ids, ids, folds=5, seed=7)
    tested = [item for _, test in folds for item in test]
    assert sorted(tested) == sorted(ids)
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 200
    assert folds == k_folds(ids, ids, folds=5, seed=7)
    assert folds != k_folds(ids, ids, folds=5, seed=8)


def record(**fields: object) -> str:
    base: dict[str, object] = {
        "id": "q1",
        "prompt": "2 + 2?",
        "outcomes": {"weak": {"score": 1.0}, "strong": {"score": 1.0, "response": "4"}},
    }
    base.update(fields)
    return json.dumps(base)


def test_outcome_files_are_read_as_documented() -> None:
    lines = [record(), "", record(id="q2", domain="algebra", benchmark="mmlu")]
    examples = list(parse_outcomes(lines))
    assert [e.id for e in examples] == ["q1", "q2"]
    assert examples[0].outcomes["strong"].response == "4" and examples[1].domain == "algebra"
    assert models_of(examples) == ["weak", "strong"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"outcomes:1: invalid JSON"),
        (record(id=""), "'id' must be a non-empty string"),
        (record(outcomes={}), "'outcomes' must map"),
        (record(outcomes={"weak": {"score": "yes"}}), "needs a numeric 'score'"),
        (record(outcomes={"weak": {"score": 1.5}}), "between 0 and 1"),
    ],
)
def test_a_bad_outcome_line_is_refused_with_its_line(line: str, message: str) -> None:
    with pytest.raises(OutcomeFileError, match=message):
        list(parse_outcomes([line]))


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text(record() + "\n" + record() + "\n")
    with pytest.raises(OutcomeFileError, match=r"outcomes.jsonl:2: id 'q1' appears twice"):
        read_outcomes(path)


@pytest.mark.skipif(not (SHARED / "gsm8k.jsonl").exists(), reason="shared RouteLLM data absent")
def test_the_shared_gsm8k_outcomes_read_and_their_oracle_is_plausible() -> None:
    examples = read_outcomes(SHARED / "gsm8k.jsonl")
    weak_model, strong_model = "mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"
    assert len(examples) == 936 and models_of(examples) == [weak_model, strong_model]
    weak = [e.score(weak_model) for e in examples]
    strong = [e.score(strong_model) for e in examples]
    assert sum(weak) / len(weak) == pytest.approx(0.641, abs=0.001)
    oracle = summarise(curve(weak, strong, oracle_scores(weak, strong)), sum(strong) / len(strong))
    # an oracle reaches 95% of the strong model's quality with under a fifth of strong calls
    assert oracle.share_for_95pct_strong is not None and oracle.share_for_95pct_strong < 0.2


def generated_outcomes(path: Path, n: int = 120) -> Path:
    """Prompts whose length predicts the weak model's failure: long ones it gets wrong."""
    lines = []
    for i in range(n):
        hard = i % 3 == 0
        prompt = ("word " * (40 if hard else 5)) + f"question {i}"
        lines.append(
            json.dumps(
                {
                    "id": f"g{i}",
                    "prompt": prompt,
                    "domain": "maths" if i % 10 == 0 else "other",
                    "outcomes": {
                        "small": {"score": 0.0 if hard else 1.0},
                        "large": {"score": 1.0 if hard or i % 7 else 0.0},
                    },
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_routeq_eval_cross_validates_and_writes_the_curves(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from routeq.cli import app

    dataset = generated_outcomes(tmp_path / "outcomes.jsonl")
    out = tmp_path / "curves.json"
    result = CliRunner().invoke(
        app, ["eval", "--dataset", str(dataset), "--out", str(out), "--per-prompt"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    names = [router["name"] for router in report["routers"]]
    assert names == ["prompt-length (5-fold, seed 0)", "random", "oracle"]
    length, random_router, oracle = report["routers"]
    assert random_router["summary"]["apgr"] == pytest.approx(0.5)
    # on this data length is the whole story: the baseline is near the oracle, far above random
    assert (
        length["summary"]["apgr"] > 0.8 and oracle["summary"]["apgr"] >= length["summary"]["apgr"]
    )
    assert len(length["scores"]) == 120 and report["weak_model"] == "small"


def test_routeq_eval_refuses_training_data_in_the_evaluation(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from routeq.cli import app

    dataset = generated_outcomes(tmp_path / "outcomes.jsonl")
    result = CliRunner().invoke(app, ["eval", "--dataset", str(dataset), "--train", str(dataset)])
    assert result.exit_code != 0 and isinstance(result.exception, UsageError)
    assert "in both the training and the evaluation data" in str(result.exception)


def test_routeq_eval_can_leave_a_domain_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from routeq.cli import app

    dataset = generated_outcomes(tmp_path / "outcomes.jsonl")
    result = CliRunner().invoke(
        app, ["eval", "--dataset", str(dataset), "--exclude-domain", "maths"]
    )
    assert result.exit_code == 0 and "108 prompts" in result.output


def test_a_line_separator_inside_a_prompt_does_not_cut_the_line(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text(record(prompt="first\u2028second\x85third") + "\n", encoding="utf-8")
    [example] = read_outcomes(path)
    assert example.prompt == "first\u2028second\x85third"
