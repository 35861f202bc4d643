"""`routeq train` and `routeq calibrate` on generated outcomes: the artifact carries its
held-out numbers, calibration meets its target on the sample and edits the config in place."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from generated_outcomes import generated
from test_cli_exit_codes import run
from typer.testing import CliRunner

from routeq.cli import app
from routeq.config import load_settings
from routeq.errors import ConfigError, UsageError
from routeq.learned import artifact as artifacts
from routeq.learned.policies import LearnedPolicy
from routeq.policies.registry import build_configured_policy
from routeq.training import _quantile_weight, calibrate, order_labels, write_cost_weight

runner = CliRunner()


def _write(path: Path, n: int, seed: int) -> Path:
    with path.open("w") as out:
        for example in generated(n, seed):
            record = {
                "id": f"{seed}-{example.id}",
                "prompt": example.prompt,
                "outcomes": {m: {"score": o.score} for m, o in example.outcomes.items()},
            }
            out.write(json.dumps(record) + "\n")
    return path


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTEQ_CONFIG", raising=False)
    monkeypatch.setenv("ROUTEQ_STATE_DIR", str(tmp_path / "state"))
    _write(tmp_path / "train.jsonl", 120, 1)
    _write(tmp_path / "sample.jsonl", 100, 2)
    return tmp_path


def test_labels_default_to_the_models_weakest_first() -> None:
    examples = generated(40)
    assert order_labels(examples, None) == ["weak", "strong"]
    assert order_labels(examples, ["strong", "weak"]) == ["strong", "weak"]
    with pytest.raises(UsageError, match="no outcomes of gpt"):
        order_labels(examples, ["weak", "gpt"])


def test_quantile_weight_sends_exactly_the_share_up() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.3])
    # Sorted 0.9, 0.5, 0.3, 0.1: half up means between 0.5 and 0.3.
    assert _quantile_weight(scores, 0.5) == pytest.approx(0.4)
    assert _quantile_weight(scores, 0.25) == pytest.approx(0.7)
    assert _quantile_weight(scores, 1.0) == 0.0
    assert _quantile_weight(scores, 0.0) > 0.9
    assert _quantile_weight(np.array([-0.2, -0.5]), 0.5) == 0.0  # never a negative weight


def test_train_writes_an_artifact_with_its_held_out_numbers(workdir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--policy",
            "expected-gain",
            "--dataset",
            "train.jsonl",
            "--out",
            "r.rqa",
            "--folds",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "held out (3-fold): APGR" in result.output
    saved = artifacts.load(workdir / "r.rqa", "expected-gain")
    assert saved.version in result.output
    assert saved.labels == ("weak", "strong")
    held_out = saved.metadata["held_out"]
    assert held_out["folds"] == 3 and held_out["examples"] == 120 and held_out["apgr"] > 0.6
    assert saved.metadata["data"]["source"] == "train.jsonl"
    assert saved.metadata["data"]["examples"] == 120


def test_train_refuses_bad_requests_with_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(
        capsys,
        monkeypatch,
        "train",
        "--policy",
        "magic",
        "--dataset",
        "train.jsonl",
        "--out",
        "r.rqa",
    )
    assert code == 2 and "unknown trainable policy 'magic'" in err
    code, _, err = run(capsys, monkeypatch, "train", "--policy", "knn", "--out", "r.rqa")
    assert code == 2 and "give one source" in err
    code, _, err = run(
        capsys,
        monkeypatch,
        "train",
        "--policy",
        "knn",
        "--dataset",
        "train.jsonl",
        "--out",
        "r.rqa",
        "--option",
        "nonsense",
    )
    assert code == 2 and "key=value" in err
    assert not (workdir / "r.rqa").exists()


def _configure(workdir: Path, kind: str = "expected-gain") -> Path:
    runner.invoke(
        app,
        ["train", "--policy", kind, "--dataset", "train.jsonl", "--out", "r.rqa", "--folds", "0"],
    )
    config = workdir / "routeq.toml"
    config.write_text(
        "# the operator's own comment\n"
        "[routing.policy]\n"
        f'name = "{kind}"\n'
        'artifact = "r.rqa"\n'
        'tiers = { cheap = "weak", frontier = "strong" }  # mapped\n'
    )
    return config


def test_calibrate_meets_the_share_and_keeps_the_config_as_written(workdir: Path) -> None:
    config = _configure(workdir)
    result = runner.invoke(
        app,
        [
            "calibrate",
            "--policy",
            "expected-gain",
            "--target-strong-share",
            "0.3",
            "--dataset",
            "sample.jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "frontier 30.0%" in result.output  # 30 of the 100 sample prompts
    text = config.read_text()
    assert text.startswith("# the operator's own comment\n") and "# mapped" in text
    weight = tomllib.loads(text)["routing"]["policy"]["cost_weight"]
    settings = load_settings(config)
    policy = build_configured_policy(settings)
    assert isinstance(policy, LearnedPolicy) and policy.cost_weight == weight
    assert policy.version.endswith(f"-w{weight:g}")


def test_calibrate_to_a_cost_target_spends_at_most_it(workdir: Path) -> None:
    config = _configure(workdir)
    settings = load_settings(config)
    policy = build_configured_policy(settings)
    assert isinstance(policy, LearnedPolicy)
    texts = [e.prompt for e in generated(100, 2)]
    cheapest = calibrate(settings, policy, texts, target_top_share=0.0)
    # A weight of 0 sends up every query the top tier is predicted to do better on (never
    # those it is predicted to do worse on: the weight is not negative).
    dearest = calibrate(settings, policy, texts, target_top_share=1.0)
    assert cheapest.top_share == 0.0 and dearest.cost_weight == 0.0
    assert 0.5 < dearest.top_share <= 1.0
    target = (cheapest.mean_cost_usd + dearest.mean_cost_usd) / 2
    middle = calibrate(settings, policy, texts, target_cost_per_query=target)
    assert middle.mean_cost_usd <= target
    assert 0 < middle.top_share < 1
    with pytest.raises(UsageError, match="give one target"):
        calibrate(settings, policy, texts)


def test_calibrate_refuses_another_policy_and_writes_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _configure(workdir)
    before = config.read_text()
    code, _, err = run(
        capsys,
        monkeypatch,
        "calibrate",
        "--policy",
        "knn",
        "--target-strong-share",
        "0.3",
        "--dataset",
        "sample.jsonl",
    )
    assert code == 2 and "the configured policy is 'expected-gain'" in err
    assert config.read_text() == before
    section = load_settings(config).routing.policy
    other = workdir / "other.toml"
    other.write_text('[routing.policy]\nname = "knn"\nartifact = "r.rqa"\n')
    with pytest.raises(ConfigError, match="does not name 'expected-gain'"):
        write_cost_weight(other, section, 0.5)  # type: ignore[arg-type]


def test_eval_measures_trained_routers_on_held_out_folds(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = run(
        capsys,
        monkeypatch,
        "eval",
        "--dataset",
        "train.jsonl",
        "--folds",
        "3",
        "--policy",
        "expected-gain",
        "--policy",
        "knn",
        "--out",
        "curves.json",
    )
    assert code == 0, err
    routers = {r["name"]: r for r in json.loads((workdir / "curves.json").read_text())["routers"]}
    assert set(routers) == {
        "expected-gain (3-fold, seed 0)",
        "knn (3-fold, seed 0)",
        "random",
        "oracle",
    }
    for name in ("expected-gain (3-fold, seed 0)", "knn (3-fold, seed 0)"):
        assert routers[name]["summary"]["apgr"] > routers["random"]["summary"]["apgr"] + 0.1
    code, _, err = run(
        capsys, monkeypatch, "eval", "--dataset", "train.jsonl", "--policy", "knn+magic"
    )
    assert code == 2 and "only NAME+cascade" in err
    code, _, err = run(capsys, monkeypatch, "eval", "--dataset", "train.jsonl", "--policy", "x")
    assert code == 2 and "unknown trainable policy 'x'" in err


def test_a_cascade_pays_the_weak_call_on_every_query() -> None:
    from decimal import Decimal

    from routeq.evaluation.cost import ExampleCost, cascaded

    paid = cascaded({"a": ExampleCost(Decimal("0.1"), Decimal("2"))})
    assert paid == {"a": ExampleCost(Decimal("0.1"), Decimal("2.1"), Decimal("2"))}


def test_a_cascade_saving_is_against_sending_everything_straight_up() -> None:
    from decimal import Decimal

    from routeq.evaluation.cost import ExampleCost, cascaded
    from routeq.evaluation.harness import _evaluation
    from routeq.evaluation.outcomes import Example, Outcome

    examples = [
        Example(f"e{i}", "q", {"w": Outcome(float(i % 2)), "s": Outcome(1.0)}) for i in range(4)
    ]
    plain = {e.id: ExampleCost(Decimal("0.001"), Decimal("0.01")) for e in examples}
    scores = [1.0, 0.0, 1.0, 0.0]  # the two the weak model gets wrong escalate first
    cascade = _evaluation("cascade", examples, "w", "s", scores, cascaded(plain))
    # All straight to strong: $10 per 1,000, not the $11 of escalating every cheap answer.
    assert cascade.summary.all_strong_cost_per_1k == pytest.approx(10.0)
    # One escalated: quality 0.75 at (4 weak + 1 strong) = $3.50 per 1,000; two: 1.0 at $6.
    # 95% lies 4/5 of the way: $3.50 + 0.8 * $2.50 = $5.50, a 45% saving on $10.
    assert cascade.summary.cost_per_1k_at_95pct == pytest.approx(5.5)
    assert cascade.summary.saving_at_95pct == pytest.approx(0.45)


def test_labels_of_a_ledger_export_follow_the_ladder_not_biased_means() -> None:
    from routeq.evaluation.outcomes import Example, Outcome

    # The cheap tier answered the easy queries (mostly right); frontier the hard ones.
    examples = [Example(f"c{i}", "q", {"cheap": Outcome(1.0)}) for i in range(8)]
    examples += [Example(f"f{i}", "q", {"frontier": Outcome(float(i % 2))}) for i in range(6)]
    examples += [
        Example(f"b{i}", "q", {"cheap": Outcome(0.0), "frontier": Outcome(1.0)}) for i in range(3)
    ]
    assert order_labels(examples, None, ["cheap", "mid", "frontier"]) == ["cheap", "frontier"]
    assert order_labels(examples, ["cheap", "frontier"]) == ["cheap", "frontier"]
    # Not tier names: ordered on the examples that have both, where frontier wins.
    assert order_labels(examples, None) == ["cheap", "frontier"]


def test_graded_ledger_outcomes_become_the_judges_verdict() -> None:
    from routeq.evaluation.outcomes import Example, Outcome
    from routeq.learned.data import from_examples

    examples = [Example("a", "q", {"cheap": Outcome(0.5), "frontier": Outcome(0.6)})]
    assert from_examples(examples, ["cheap", "frontier"], 0.6).outcomes.tolist() == [[0.0, 1.0]]
    assert from_examples(examples, ["cheap", "frontier"]).outcomes.tolist() == [[0.5, 0.6]]


def test_train_writes_a_cascade_verifier_of_the_weak_models_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROUTEQ_CONFIG", raising=False)
    monkeypatch.setenv("ROUTEQ_STATE_DIR", str(tmp_path / "state"))
    with (tmp_path / "answers.jsonl").open("w") as out:
        for i in range(60):
            right = i % 2 == 0
            total = 30 if right else 37
            answer = f"5*6 = <<5*6={total}>>{total} eggs.\n#### {total}"
            record = {
                "id": f"a{i}",
                "prompt": f"A box holds 5 rows of 6 eggs ({i}). How many eggs?",
                "outcomes": {
                    "weak": {"score": float(right), "response": answer},
                    "strong": {"score": 1.0},
                },
            }
            out.write(json.dumps(record) + "\n")
    code, out_text, err = run(
        capsys,
        monkeypatch,
        "train",
        "--policy",
        "cascade-verifier",
        "--dataset",
        "answers.jsonl",
        "--out",
        "v.rqa",
        "--folds",
        "3",
    )
    assert code == 0, err
    saved = artifacts.load(tmp_path / "v.rqa", "cascade-verifier")
    # The oracle's APGR here is 0.75 (half the answers are wrong, strong always right).
    assert saved.metadata["verifies"] == "weak" and saved.metadata["held_out"]["apgr"] > 0.7
    assert "held out (3-fold)" in out_text
