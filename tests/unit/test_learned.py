"""Trained routers on a small generated dataset: each kind trains, predicts what the data says,
round-trips through its artifact, and a bad artifact is refused with the reason."""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from generated_outcomes import generated

from routeq.config import Settings, TierConfig
from routeq.errors import ConfigError
from routeq.evaluation.harness import cross_validated
from routeq.evaluation.outcomes import Example
from routeq.learned import artifact as artifacts
from routeq.learned.artifact import Artifact, ArtifactError
from routeq.learned.data import from_examples
from routeq.learned.decide import choose, relative_costs, routing_score, top_share
from routeq.learned.embeddings import shared_embedder
from routeq.learned.models import KINDS, load_model, train
from routeq.learned.policies import LearnedPolicy, build_learned, map_tiers
from routeq.learned.trainers import LearnedTrainer, predict
from routeq.policies.base import QueryView


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    return shared_embedder()


def _hard(examples: list[Example]) -> np.ndarray:
    return np.array([bool(e.extra["hard"]) for e in examples])


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_learns_which_prompts_need_the_strong_model(kind: str, embedder) -> None:  # type: ignore[no-untyped-def]
    train_set, test_set = generated(160, seed=1), generated(60, seed=2)
    data = from_examples(train_set, ["weak", "strong"])
    vectors = embedder.embed(data.texts)
    model = load_model(train(kind, data, vectors))
    quality = predict(model, [e.prompt for e in test_set], embedder)
    assert quality.shape == (60, 2)
    assert ((quality >= 0) & (quality <= 1)).all()
    gain = quality[:, 1] - quality[:, 0]
    hard = _hard(test_set)
    # The chance that a hard prompt's predicted gain beats an easy one's (the ROC AUC): the
    # data is clear, so nearly always; a router that learned nothing scores 0.5.
    wins = (gain[hard][:, None] > gain[~hard][None, :]).mean()
    assert wins > 0.95, (kind, wins)


@pytest.mark.parametrize("kind", KINDS)
def test_artifact_round_trips_to_the_same_predictions(kind: str, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = from_examples(generated(80), ["weak", "strong"])
    vectors = embedder.embed(data.texts)
    trained = train(kind, data, vectors, {"epochs": 20} if kind == "matrix-factorisation" else {})
    saved = artifacts.save(trained, tmp_path / "router.rqa")
    loaded = artifacts.load(tmp_path / "router.rqa", kind)
    assert loaded.version == saved.version and len(saved.version) == 12
    assert loaded.labels == ("weak", "strong")
    assert loaded.metadata["examples"] == 80
    texts = ["What is 3 plus 4?", "Prove that the integral of x^3 from 0 to 9 converges."]
    before = load_model(trained).quality(texts, embedder.embed(texts))
    after = load_model(loaded).quality(texts, embedder.embed(texts))
    # knn keeps its vectors as float16: equal to that precision.
    np.testing.assert_allclose(before, after, atol=2e-3 if kind == "knn" else 1e-9)


def test_the_same_model_gives_the_same_version(tmp_path: Path) -> None:
    one = Artifact("knn", ("a", "b"), {"x": np.arange(3.0)}, {"k": 3})
    assert (
        artifacts.save(one, tmp_path / "1").version == artifacts.save(one, tmp_path / "2").version
    )
    other = Artifact("knn", ("a", "b"), {"x": np.arange(4.0)}, {"k": 3})
    assert (
        artifacts.save(other, tmp_path / "3").version != artifacts.save(one, tmp_path / "1").version
    )


def test_missing_artifact_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"does not exist: train one with `routeq train"):
        artifacts.load(tmp_path / "nope.rqa", "expected-gain")


def test_corrupt_artifact_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.rqa"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ArtifactError, match="not a readable routeq artifact"):
        artifacts.load(path, "knn")
    good = artifacts.to_bytes(Artifact("knn", ("a", "b"), {"x": np.zeros(2)}))
    path.write_bytes(good[: len(good) // 2])  # cut short
    with pytest.raises(ArtifactError, match="not a readable routeq artifact"):
        artifacts.load(path, "knn")


def test_artifact_of_another_kind_or_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.rqa"
    artifacts.save(Artifact("knn", ("a", "b"), {"x": np.zeros(2)}), path)
    with pytest.raises(ArtifactError, match="holds a 'knn' model, not a 'expected-gain' one"):
        artifacts.load(path, "expected-gain")
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["metadata.json"] = entries["metadata.json"].replace(
        b'"format_version": 1', b'"format_version": 99'
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(ArtifactError, match="format 99; this routeq reads format 1"):
        artifacts.load(path, "knn")


def test_artifact_missing_an_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.rqa"
    metadata = {"embedding_model": "use-multilingual-v3"}
    artifacts.save(Artifact("knn", ("a", "b"), {"vectors": np.zeros((2, 512))}, metadata), path)
    with pytest.raises(ArtifactError, match="has no array 'outcomes'"):
        load_model(artifacts.load(path, "knn"))


def test_cost_weight_trades_quality_for_cost() -> None:
    quality = np.array([[0.9, 0.95], [0.2, 0.9], [0.5, 0.6]])
    costs = np.array([0.1, 1.0])
    # Gains per unit of cost gap: 0.05/0.9, 0.7/0.9, 0.1/0.9.
    np.testing.assert_allclose(routing_score(quality, costs), [0.05 / 0.9, 0.7 / 0.9, 0.1 / 0.9])
    assert choose(quality, costs, 0.0).tolist() == [1, 1, 1]
    assert choose(quality, costs, 0.1).tolist() == [0, 1, 1]  # 0.05 < 0.09 < 0.1
    assert choose(quality, costs, 1.0).tolist() == [0, 0, 0]
    assert top_share(quality, costs, 0.1) == pytest.approx(2 / 3)
    # Three tiers: the middle wins where it is nearly as good as the top for less.
    three = np.array([[0.3, 0.85, 0.9]])
    assert choose(three, np.array([0.05, 0.3, 1.0]), 0.2).tolist() == [1]


def test_relative_costs_price_a_typical_query() -> None:
    settings = Settings()
    costs = relative_costs(settings.tiers)
    assert costs[-1] == 1.0 and (np.diff(costs) > 0).all()
    small = settings.tiers[0]
    top = settings.tiers[-1]
    expected = (small.input_price_per_mtok * 500 + small.output_price_per_mtok * 300) / (
        top.input_price_per_mtok * 500 + top.output_price_per_mtok * 300
    )
    assert costs[0] == pytest.approx(float(expected))
    free = TierConfig.model_validate(
        {
            **settings.tiers[0].model_dump(),
            "input_price_per_mtok": Decimal(0),
            "output_price_per_mtok": Decimal(0),
        }
    )
    assert relative_costs([free, free]).tolist() == [0.0, 0.0]


def test_tier_mapping_errors_name_the_fix() -> None:
    tiers = ["small", "medium", "frontier"]
    mapped = map_tiers(("weak", "strong"), {"frontier": "strong", "small": "weak"}, tiers, "x")
    assert mapped.tiers == ("small", "frontier") and mapped.columns == (0, 1)
    with pytest.raises(ConfigError, match="fewer than two are tiers of this ladder"):
        map_tiers(("weak", "strong"), {}, tiers, "x")
    with pytest.raises(ConfigError, match="it has no nope"):
        map_tiers(("weak", "strong"), {"small": "nope", "frontier": "strong"}, tiers, "x")
    assert map_tiers(("small", "frontier"), {}, tiers, "x").tiers == ("small", "frontier")


def test_policy_routes_hard_queries_up_and_records_why(embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = from_examples(generated(160), ["weak", "strong"])
    path = tmp_path / "gain.rqa"
    saved = artifacts.save(train("expected-gain", data, embedder.embed(data.texts)), path)
    settings = Settings.model_validate(
        {
            "routing": {
                "policy": {
                    "name": "expected-gain",
                    "artifact": str(path),
                    "cost_weight": 0.3,
                    "tiers": {"cheap": "weak", "frontier": "strong"},
                }
            }
        }
    )
    policy = build_learned(settings.routing.policy, settings)  # type: ignore[arg-type]
    assert isinstance(policy, LearnedPolicy)
    assert policy.version == f"{saved.version}-w0.3"
    easy, hard = (
        QueryView(text="Add 3 and 4.", token_count=5),
        QueryView(text="Derive the closed form of f(n) = 3 f(n-1) - 2 f(n-2).", token_count=20),
    )
    decisions = policy.decide_many([easy, hard])
    assert [d.tier for d in decisions] == ["cheap", "frontier"]
    assert set(decisions[1].details["quality"]) == {"cheap", "frontier"}
    assert decisions[1].score is not None and decisions[1].score > decisions[0].score  # type: ignore[operator]
    assert "over cheap" in decisions[1].reason


def test_policy_with_a_missing_artifact_fails_at_build(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"routing": {"policy": {"name": "knn", "artifact": str(tmp_path / "gone.rqa")}}}
    )
    from routeq.policies.registry import build_configured_policy

    with pytest.raises(ConfigError, match=r"gone\.rqa does not exist"):
        build_configured_policy(settings)


def test_trainer_cross_validates_on_held_out_folds(embedder) -> None:  # type: ignore[no-untyped-def]
    examples = generated(120)
    evaluation = cross_validated(
        LearnedTrainer("expected-gain", embedder), examples, "weak", "strong", 3, 0
    )
    # Clear data: far better than random (0.5).
    assert evaluation.summary.apgr > 0.6


def test_knn_needs_a_positive_prior_weight(embedder) -> None:  # type: ignore[no-untyped-def]
    data = from_examples(generated(20), ["weak", "strong"])
    with pytest.raises(ValueError, match="prior_weight must be above 0"):
        train("knn", data, embedder.embed(data.texts), {"prior_weight": 0})


def test_damaged_compressed_bytes_are_an_artifact_error(tmp_path: Path) -> None:
    good = bytearray(artifacts.to_bytes(Artifact("knn", ("a", "b"), {"x": np.arange(500.0)})))
    seen = set()
    for offset in range(60, len(good) - 30, 7):  # flip bytes inside the compressed entries
        damaged = bytearray(good)
        damaged[offset] ^= 0xFF
        try:
            artifacts.from_bytes(bytes(damaged), "knn")
        except ArtifactError:
            seen.add("refused")
        # anything else escaping would fail the test
    assert "refused" in seen
