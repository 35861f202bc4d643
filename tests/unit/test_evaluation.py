"""The evaluation harness's numbers against values computed by hand, and its outcome files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from test_cli_exit_codes import run as run_main

from routeq.config import TierConfig
from routeq.errors import UsageError
from routeq.evaluation.cost import (
    ExampleCost,
    TierPrices,
    example_costs,
    output_tokens,
    tier_prices,
)
from routeq.evaluation.curve import curve, oracle_scores, random_curve, summarise
from routeq.evaluation.folds import k_folds
from routeq.evaluation.harness import held_out, references
from routeq.evaluation.outcomes import (
    Example,
    Outcome,
    OutcomeFileError,
    models_of,
    parse_outcomes,
    read_outcomes,
)
from routeq.evaluation.plot import nice_ticks, svg
from routeq.evaluation.report import as_json, cost_caption, rows

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


# -- cost at the tiers' prices ---------------------------------------------------------------------


def priced_tier(name: str, input_price: str, output_price: str) -> TierConfig:
    return TierConfig(
        name=name,
        provider="openai",
        base_url="http://127.0.0.1:1/v1",
        model=f"model-{name}",
        input_price_per_mtok=Decimal(input_price),
        output_price_per_mtok=Decimal(output_price),
        context_window=1000,
    )


# USD per million tokens: the weak tier $1 in / $2 out, the strong tier $10 in / $30 out.
PRICES = TierPrices(weak=priced_tier("small", "1", "2"), strong=priced_tier("big", "10", "30"))


def priced_examples() -> list[Example]:
    """Three prompts of known cl100k counts (3, 1 and 5 tokens), with responses of known counts.

    - a: weak "yes" (1 token) wrong, strong "yes it is" (3 tokens) right
    - b: no weak response, an empty strong one (each counted as 1 output token), both right
    - c: weak "no" (1 token) wrong, strong "one two" (2 tokens) right
    """
    return [
        Example(
            "a",
            "one two three",
            {"w": Outcome(0.0, "yes"), "s": Outcome(1.0, "yes it is")},
        ),
        Example("b", "one", {"w": Outcome(1.0, None), "s": Outcome(1.0, "")}),
        Example(
            "c",
            "one two three four five",
            {"w": Outcome(0.0, "no"), "s": Outcome(1.0, "one two")},
        ),
    ]


def test_each_example_is_priced_on_both_models_by_hand() -> None:
    costs = example_costs(priced_examples(), "w", "s", PRICES)
    micro = Decimal("0.000001")  # $1 per million tokens is a micro-dollar a token
    # a: weak 3 x $1 + 1 x $2 = 5 µ$; strong 3 x $10 + 3 x $30 = 120 µ$
    assert costs["a"] == ExampleCost(weak=5 * micro, strong=120 * micro)
    # b: weak 1 x $1 + 1 (missing response) x $2 = 3 µ$; strong 1 x $10 + 1 (empty) x $30 = 40
    assert costs["b"] == ExampleCost(weak=3 * micro, strong=40 * micro)
    # c: weak 5 x $1 + 1 x $2 = 7 µ$; strong 5 x $10 + 2 x $30 = 110 µ$
    assert costs["c"] == ExampleCost(weak=7 * micro, strong=110 * micro)
    assert output_tokens(None) == output_tokens("") == 1 and output_tokens("yes it is") == 3


def test_each_curve_point_costs_exactly_the_prompts_it_sends_to_strong() -> None:
    examples = priced_examples()
    costs = example_costs(examples, "w", "s", PRICES)
    # scores send a first, then c, then b
    measured = held_out(FixedScores([0.9, 0.1, 0.5]), [], examples, "w", "s", costs)
    per_1k = [p.cost_per_1k for p in measured.points]
    # µ$ for the 3 prompts: all weak 5 + 3 + 7 = 15; a to strong 15 - 5 + 120 = 130;
    # c too 130 - 7 + 110 = 233; all strong 233 - 3 + 40 = 270. Per 1,000 queries:
    # total / 3 prompts x 1,000 / 1,000,000
    assert per_1k == pytest.approx([0.005, 130 / 3000, 233 / 3000, 0.09])
    summary = measured.summary
    assert summary.all_weak_cost_per_1k == pytest.approx(0.005)
    assert summary.all_strong_cost_per_1k == pytest.approx(0.09)
    # quality 1/3, 2/3, 1, 1 and strong quality 1: 0.95 is 85% of the way from the second
    # point to the third, and so is the cost: (130 + 0.85 x 103) / 3000 = 217.55 / 3000
    assert summary.share_for_95pct_strong == pytest.approx((1 + 0.85) / 3)
    assert summary.cost_per_1k_at_95pct == pytest.approx(217.55 / 3000)
    assert summary.saving_at_95pct == pytest.approx(1 - 217.55 / 270)
    # the random router pays for a random share: linear from all-weak to all-strong
    random_router, oracle = references(examples, "w", "s", costs)
    assert random_router.points[50].cost_per_1k == pytest.approx((0.005 + 0.09) / 2)
    # the oracle sends a and c (a gain of 1 each, a tie) together: 233 µ$ at share 2/3
    assert [p.cost_per_1k for p in oracle.points] == pytest.approx([0.005, 233 / 3000, 0.09])


def test_a_curve_without_costs_has_none_and_half_given_costs_are_refused() -> None:
    points = curve(WEAK, STRONG, SCORES)
    assert all(p.cost_per_1k is None for p in points)
    summary = summarise(points, 0.75)
    assert summary.cost_per_1k_at_95pct is None and summary.saving_at_95pct is None
    with pytest.raises(ValueError, match="go together"):
        curve(WEAK, STRONG, SCORES, weak_cost=[1.0] * 4)


def test_the_prices_default_to_the_first_and_the_top_tier_and_refuse_unknown_names() -> None:
    tiers = [priced_tier("cheap", "0.1", "0.2"), priced_tier("mid", "1", "2"), PRICES.strong]
    default = tier_prices(tiers)
    assert (default.weak.name, default.strong.name) == ("cheap", "big")
    chosen = tier_prices(tiers, "mid", "mid")
    assert (chosen.weak.name, chosen.strong.name) == ("mid", "mid")
    with pytest.raises(UsageError, match=r"'huge'.*known tiers: cheap, mid, big"):
        tier_prices(tiers, strong_tier="huge")


@dataclass(frozen=True)
class FixedScores:
    """A router whose scores are given: the harness's plumbing without any learning."""

    values: list[float]
    name: str = "fixed"

    def train(self, examples: Sequence[Example], weak: str, strong: str) -> FixedScores:
        return self

    def scores(self, examples: Sequence[Example]) -> list[float]:
        return list(self.values)


def test_the_report_shows_and_the_json_holds_the_costs() -> None:
    examples = priced_examples()
    costs = example_costs(examples, "w", "s", PRICES)
    evaluations = [
        held_out(FixedScores([0.9, 0.1, 0.5]), [], examples, "w", "s", costs),
        *references(examples, "w", "s", costs),
    ]
    header, fixed, *_ = rows(evaluations)
    assert header[-2:] == ["$/1k at 95%", "saving vs all-strong"]
    assert fixed[-2:] == ["$0.0725", "19.4%"]  # 217.55 / 3000 and 1 - 217.55 / 270
    caption = cost_caption(evaluations, PRICES)
    assert "all weak $0.0050 at small's prices" in caption and "all strong $0.0900" in caption
    data = as_json(evaluations, dataset="d", weak="w", strong="s", per_prompt=False, prices=PRICES)
    assert data["pricing"]["strong"] == {
        "tier": "big",
        "input_price_per_mtok": 10.0,
        "output_price_per_mtok": 30.0,
    }
    summary = data["routers"][0]["summary"]
    assert summary["cost_per_1k_at_95pct"] == pytest.approx(217.55 / 3000)
    assert data["routers"][0]["curve"][0]["cost_per_1k"] == pytest.approx(0.005)
    json.dumps(data)  # plain JSON: no Decimal left in it


# -- the plot --------------------------------------------------------------------------------------


def test_the_svg_parses_and_draws_one_line_per_router() -> None:
    import xml.etree.ElementTree as ET

    examples = priced_examples()
    evaluations = [
        held_out(FixedScores([0.9, 0.1, 0.5]), [], examples, "w", "s"),
        held_out(FixedScores([0.1, 0.2, 0.3], name="a <b> & 'c'"), [], examples, "w", "s"),
        *references(examples, "w", "s"),
    ]
    root = ET.fromstring(svg(evaluations, "tiny & test"))
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f".//{ns}polyline")
    assert [line.get("data-router") for line in lines] == [e.name for e in evaluations]
    styles = {line.get("data-router"): line for line in lines}
    assert styles["random"].get("stroke-dasharray") == "7 5"  # dashed
    assert styles["oracle"].get("stroke-linecap") == "round"  # dots: round caps on 0.1 dashes
    assert styles["fixed"].get("stroke-dasharray") is None  # a measured router is solid
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "tiny & test" in texts and "a <b> & 'c'" in texts  # escaped, read back intact
    # the reference lines are labelled with the two models' quality (1/3 and 1)
    assert "weak model 0.333" in texts and "strong model 1.000" in texts
    assert "100%" in texts and any(t and t.startswith("mean quality") for t in texts)


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    # a span of 0.33 in about six steps: 0.055 rounds up to a step of 0.1
    ticks, decimals = nice_ticks(0.61, 0.94)
    assert ticks == [0.6, 0.7, 0.8, 0.9, 1.0] and decimals == 1
    # a span of 0.12: 0.02 is a round step itself
    ticks, decimals = nice_ticks(0.635, 0.755)
    assert ticks == [0.62, 0.64, 0.66, 0.68, 0.7, 0.72, 0.74, 0.76] and decimals == 2
    ticks, decimals = nice_ticks(0.0, 1.0)
    assert ticks[0] == 0.0 and ticks[-1] == 1.0 and decimals == 1


def test_loading_the_png_module_does_not_import_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, routeq.evaluation.plot_png; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_png_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys

    from routeq.errors import ConfigError
    from routeq.evaluation import plot_png

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ConfigError, match=r"pip install 'routeq\[learn\]'"):
        plot_png.require()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'routeq\[learn\]'"):
        plot_png.png(references(priced_examples(), "w", "s"), "t")


def test_routeq_eval_plots_a_png_and_shows_the_costs(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = generated_outcomes(clean_env / "outcomes.jsonl")
    plot, out = clean_env / "curves.png", clean_env / "curves.json"
    code, output, err = run_main(
        capsys, monkeypatch, "eval", "--dataset", str(dataset), "--plot", str(plot),
        "--out", str(out), "--strong-tier", "mid",
    )  # fmt: skip
    assert code == 0, err
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "$/1k at 95%" in output and "saving vs all-strong" in output
    # the default settings' tiers: cheap (the first) for weak, mid as asked for strong
    assert "at cheap's prices" in output and "at mid's" in output
    report = json.loads(out.read_text())
    assert report["pricing"]["strong"]["tier"] == "mid"
    assert all(r["summary"]["all_strong_cost_per_1k"] > 0 for r in report["routers"])


def test_routeq_eval_writes_an_svg_plot(clean_env: Path) -> None:
    from typer.testing import CliRunner

    from routeq.cli import app

    dataset = generated_outcomes(clean_env / "outcomes.jsonl")
    plot = clean_env / "curves.svg"
    result = CliRunner().invoke(app, ["eval", "--dataset", str(dataset), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.read_text(encoding="utf-8").count("<polyline") == 3


def test_routeq_eval_refuses_a_plot_it_cannot_write_before_any_work(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = clean_env / "curves.json"
    # the dataset does not even exist: the plot's suffix is refused first
    code, _, err = run_main(
        capsys, monkeypatch, "eval", "--dataset", "missing.jsonl", "--plot", "curves.txt",
        "--out", str(out),
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: --plot curves.txt: the file must end in .svg or .png")
    assert "Traceback" not in err and not out.exists()


def test_routeq_eval_refuses_an_unknown_tier_listing_the_known_ones(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = generated_outcomes(clean_env / "outcomes.jsonl")
    code, _, err = run_main(
        capsys, monkeypatch, "eval", "--dataset", str(dataset), "--weak-tier", "tiny"
    )
    assert code == 2 and "known tiers: cheap, mid, frontier" in err
