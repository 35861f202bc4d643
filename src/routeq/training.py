"""Training and calibrating a routing policy: what ``routeq train`` and ``routeq calibrate`` do.

Training fits a router of one kind on outcome examples (a file in the documented format, or
the ledger's own traffic exported to one), measures it by cross-validation on that data (folds
that training never saw, recorded in the artifact's metadata so every artifact says how good it
was when made), then fits it on all of it and writes the versioned artifact.

Calibration sets the configured policy's ``cost_weight`` from a sample of traffic: for two
tiers it is the quantile of the policy's routing score that sends the target share up; for
more tiers (or a cost target) a bisection on the weight, since the share sent up and the mean
cost only fall as the weight rises. The weight is written into the config file in place,
keeping the operator's comments and layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routeq.config import Settings
from routeq.errors import ConfigError, UsageError
from routeq.evaluation.harness import Evaluation, Trainer, cross_validated
from routeq.evaluation.outcomes import Example
from routeq.learned import artifact as artifacts
from routeq.learned.artifact import Artifact
from routeq.learned.configs import LearnedPolicyConfig
from routeq.learned.data import from_examples, passed
from routeq.learned.decide import TYPICAL_OUTPUT_TOKENS, choose, routing_score
from routeq.learned.embeddings import Embedder
from routeq.learned.models import KINDS, needs_embeddings, train
from routeq.learned.policies import LearnedPolicy
from routeq.learned.trainers import LearnedTrainer
from routeq.tokens import count_tokens


@dataclass(frozen=True)
class TrainedRouter:
    artifact: Artifact
    path: Path
    held_out: Evaluation | None  # cross-validated on the training data, when it has two labels


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"unknown trainable policy {kind!r}; trainable: {', '.join(KINDS)}")


def order_labels(
    examples: Sequence[Example], labels: Sequence[str] | None, tier_names: Sequence[str] = ()
) -> list[str]:
    """The labels to learn, weakest first: as given, else every label in the data, in ladder
    order when they are all tier names (a ledger export), else by mean score on the examples
    that have them all (each label's own sample is biased: the cheap tier answered the queries
    the old policy thought easy)."""
    known = list(dict.fromkeys(label for e in examples for label in e.outcomes))
    if labels:
        missing = [label for label in labels if label not in known]
        if missing:
            raise UsageError(
                f"no outcomes of {', '.join(missing)}; the data has {', '.join(known)}"
            )
        return list(labels)
    if len(known) < 2:
        raise UsageError(f"need outcomes of two models or tiers to learn from; found {known}")
    if all(label in tier_names for label in known):
        return [t for t in tier_names if t in known]
    together = [e for e in examples if all(label in e.outcomes for label in known)]
    if not together:
        raise UsageError(
            f"no example has outcomes of all of {', '.join(known)}: name the labels, weakest "
            "first, with --label"
        )

    def mean(label: str) -> float:
        return sum(e.score(label) for e in together) / len(together)

    return sorted(known, key=mean)


def train_router(
    kind: str,
    examples: Sequence[Example],
    labels: Sequence[str],
    out: Path,
    *,
    embedder: Embedder | None,
    options: Mapping[str, Any] | None = None,
    source: str,
    folds: int = 5,
    seed: int = 0,
    pass_score: float | None = None,
) -> TrainedRouter:
    """Measure by cross-validation, fit on everything, write the artifact. ``pass_score``
    turns graded outcomes into pass/fail (see ``from_examples``)."""
    check_kind(kind)
    options = dict(options or {})
    trainer = LearnedTrainer(kind, embedder, options)
    held_out = _held_out(trainer, examples, labels, folds, seed)
    data = from_examples(examples, labels, pass_score)
    embedded = needs_embeddings(kind, options) and embedder is not None
    embeddings = embedder.embed(data.texts) if embedded and embedder else None
    trained = train(kind, data, embeddings, options)
    extra = {"options": options, "pass_score": pass_score}
    return _save(trained, examples, out, source, held_out, extra)


def train_cascade_verifier(
    examples: Sequence[Example],
    labels: Sequence[str],
    out: Path,
    *,
    source: str,
    folds: int = 5,
    seed: int = 0,
    pass_score: float = 0.5,
) -> TrainedRouter:
    """Train the verifier of the weakest label's answers (``labels[0]``: they need their
    responses), measured as a cascade against the strongest label by cross-validation."""
    from routeq.learned.cascade import CascadeTrainer, train_verifier

    weak = labels[0]
    answered = [e for e in examples if e.outcomes.get(weak) and e.outcomes[weak].response]
    if not answered:
        raise UsageError(f"no example carries {weak}'s answer: the verifier learns from them")
    held_out = _held_out(CascadeTrainer(), answered, labels, folds, seed)
    trained = train_verifier(
        [e.prompt for e in answered],
        [e.outcomes[weak].response or "" for e in answered],
        [passed(e.score(weak), pass_score) for e in answered],
    )
    return _save(trained, answered, out, source, held_out, {"verifies": weak})


@dataclass(frozen=True)
class _HeldOut:
    evaluation: Evaluation
    folds: int
    seed: int
    weak: str
    strong: str
    examples: int


def _held_out(
    trainer: Trainer, examples: Sequence[Example], labels: Sequence[str], folds: int, seed: int
) -> _HeldOut | None:
    """The trainer cross-validated on the examples with outcomes of both the weakest and the
    strongest label, or None when there are too few, or the strong label is no better there
    (no curve to draw)."""
    weak, strong = labels[0], labels[-1]
    paired = [e for e in examples if weak in e.outcomes and strong in e.outcomes]
    if folds < 2 or len(paired) < folds * 2 or weak == strong:
        return None
    try:
        evaluation = cross_validated(trainer, paired, weak, strong, folds, seed)
    except ValueError:
        return None
    return _HeldOut(evaluation, folds, seed, weak, strong, len(paired))


def _save(
    trained: Artifact,
    examples: Sequence[Example],
    out: Path,
    source: str,
    held_out: _HeldOut | None,
    extra: Mapping[str, Any],
) -> TrainedRouter:
    """Write ``trained`` with what every artifact records: the data, the held-out numbers and
    the date, beside its own metadata and ``extra``."""
    summary = None if held_out is None else held_out.evaluation.summary
    metadata = {
        **trained.metadata,
        "data": {"source": source, "sha256": _fingerprint(examples), "examples": len(examples)},
        **extra,
        "held_out": None
        if held_out is None or summary is None
        else {
            "folds": held_out.folds,
            "seed": held_out.seed,
            "weak": held_out.weak,
            "strong": held_out.strong,
            "examples": held_out.examples,
            "apgr": round(summary.apgr, 4),
            "cpt50": summary.cpt50,
            "cpt80": summary.cpt80,
            "share_for_95pct_strong": summary.share_for_95pct_strong,
        },
        "routeq_trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    saved = artifacts.save(Artifact(trained.kind, trained.labels, trained.arrays, metadata), out)
    return TrainedRouter(saved, out, None if held_out is None else held_out.evaluation)


def _fingerprint(examples: Sequence[Example]) -> str:
    """A hash of what was trained on (ids and scores), to tell two trainings' data apart."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example.id.encode())
        for label in sorted(example.outcomes):
            digest.update(f"{label}={example.outcomes[label].score};".encode())
    return digest.hexdigest()[:16]


# --- calibration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    cost_weight: float
    sample: int
    top_tier: str
    top_share: float  # realised on the sample at the chosen weight
    mean_cost_usd: float  # per query on the sample, at the tiers' prices
    shares: dict[str, float]  # per tier


def query_costs(settings: Settings, tiers: Sequence[str], texts: Sequence[str]) -> NDArray[Any]:
    """USD per query on each tier: the text's input tokens (the offline tokenizer) and a typical
    answer's output tokens, at the tiers' prices."""
    by_name = {tier.name: tier for tier in settings.tiers}
    tokens = np.array([count_tokens(t) for t in texts], dtype=np.float64)
    columns = []
    for name in tiers:
        tier = by_name[name]
        per_in = float(tier.input_price_per_mtok / Decimal(1_000_000))
        per_out = float(tier.output_price_per_mtok / Decimal(1_000_000))
        columns.append(tokens * per_in + TYPICAL_OUTPUT_TOKENS * per_out)
    return np.stack(columns, axis=1)


def calibrate(
    settings: Settings,
    policy: LearnedPolicy,
    texts: Sequence[str],
    *,
    target_top_share: float | None = None,
    target_cost_per_query: float | None = None,
) -> Calibration:
    """The cost weight that meets the target on ``texts``, and what it realises there."""
    if (target_top_share is None) == (target_cost_per_query is None):
        raise UsageError("give one target: --target-strong-share or --target-cost-per-query")
    if not texts:
        raise UsageError("the calibration sample is empty")
    if target_top_share is not None and not 0 <= target_top_share <= 1:
        raise UsageError("--target-strong-share must be between 0 and 1")
    quality = policy.quality(texts)
    costs = policy.relative_costs
    usd = query_costs(settings, policy.tiers, texts)
    top = len(policy.tiers) - 1

    def share(weight: float) -> float:
        return float(np.mean(choose(quality, costs, weight) == top))

    def spend(weight: float) -> float:
        chosen = choose(quality, costs, weight)
        return float(np.mean(usd[np.arange(len(texts)), chosen]))

    if target_top_share is not None and len(policy.tiers) == 2:
        weight = _quantile_weight(routing_score(quality, costs), target_top_share)
    elif target_top_share is not None:
        weight = _bisect(share, target_top_share)
    else:
        assert target_cost_per_query is not None
        weight = _bisect(spend, target_cost_per_query)
    chosen = choose(quality, costs, weight)
    return Calibration(
        cost_weight=round(weight, 6),
        sample=len(texts),
        top_tier=policy.tiers[-1],
        top_share=share(weight),
        mean_cost_usd=spend(weight),
        shares={t: float(np.mean(chosen == i)) for i, t in enumerate(policy.tiers)},
    )


def _quantile_weight(scores: NDArray[np.float64], share: float) -> float:
    """The weight under which exactly ``share`` of the scores lie (the midpoint between the
    last score sent up and the first kept down); never negative."""
    ranked = np.sort(scores)[::-1]
    sent = round(share * len(ranked))
    if sent <= 0:
        return max(float(ranked[0]) + 1e-6, 0.0)
    if sent >= len(ranked):
        return 0.0
    return max((float(ranked[sent - 1]) + float(ranked[sent])) / 2, 0.0)


def _bisect(measure: Any, target: float) -> float:
    """The smallest weight whose ``measure`` (falling as the weight rises) is at most
    ``target``."""
    low, high = 0.0, 1.0
    while measure(high) > target and high < 1e6:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        if measure(middle) > target:
            low = middle
        else:
            high = middle
    return high


def write_cost_weight(config_file: Path, policy: LearnedPolicyConfig, weight: float) -> None:
    """Set ``[routing.policy] cost_weight`` in ``config_file``, keeping everything else (its
    comments too) as it was."""
    import tomlkit

    try:
        document = tomlkit.parse(config_file.read_text(encoding="utf-8"))
    except (OSError, tomlkit.exceptions.ParseError) as error:
        raise ConfigError(f"{config_file}: cannot update the config file: {error}") from None
    routing = document.setdefault("routing", tomlkit.table())
    section = routing.get("policy")
    if not isinstance(section, Mapping) or section.get("name") != policy.name:
        raise ConfigError(
            f"{config_file}: [routing.policy] does not name {policy.name!r}: nothing written"
        )
    section["cost_weight"] = weight  # type: ignore[index]
    partial = config_file.with_name(f".{config_file.name}.partial")
    partial.write_text(tomlkit.dumps(document), encoding="utf-8")
    partial.replace(config_file)
