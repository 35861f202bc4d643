"""Routing quality and decision latency of every policy on the shared outcome data.

    .venv/bin/python bench/routing.py --data DIR --out bench/routing

where DIR holds RouteLLM's per-prompt outcome files ``gsm8k.jsonl`` and ``mmlu.jsonl`` (Mixtral-
8x7B and GPT-4; Apache-2.0, not shipped with routeq) in the format of docs/evaluation.md.
Writes ``bench/routing.json`` (every number) and ``bench/routing.md`` (the tables). Quality is
measured by 5-fold cross-validation (seed 0): each prompt is scored by a router trained on the
other folds, never on itself. One configuration per policy (the defaults) for every dataset:
tuning per dataset on the same folds would flatter the numbers. Decision latency is measured on
this machine with routers trained on the whole file, on prompts whose embeddings are not cached
(the embedding is part of the decision), one query at a time and in batches of 64.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from routeq.config import Settings
from routeq.evaluation.cost import cascaded, example_costs, tier_prices
from routeq.evaluation.harness import (
    Evaluation,
    PromptLength,
    Trainer,
    cross_validated,
    references,
    without_domain,
)
from routeq.evaluation.outcomes import read_outcomes
from routeq.learned import artifact as artifacts
from routeq.learned.cascade import CascadeTrainer, CombinedTrainer, is_cascade
from routeq.learned.data import from_examples
from routeq.learned.embeddings import UniversalSentenceEncoder, shared_embedder
from routeq.learned.models import KINDS, train
from routeq.learned.policies import LearnedPolicy, build_learned
from routeq.policies.base import QueryView

WEAK, STRONG = "mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"
MATHS = "high_school_mathematics"
TARGETS = {
    "gsm8k": {"apgr": 0.68, "share95": 0.50},
    "gsm8k cascade": {"apgr": 0.78, "share95": 0.40},
    "mmlu": {"apgr": 0.74, "share95": 0.33},
    "mmlu without maths": {"apgr": 0.70},
}


def trainers(embedder: Any, with_cascade: bool) -> list[Trainer]:
    from routeq.learned.trainers import LearnedTrainer

    found: list[Trainer] = [PromptLength(), *(LearnedTrainer(k, embedder) for k in KINDS)]
    if with_cascade:
        found += [CascadeTrainer(), CombinedTrainer(LearnedTrainer("expected-gain", embedder))]
    return found


def quality(name: str, examples: list[Any], embedder: Any, cascade: bool) -> dict[str, Any]:
    prices = tier_prices(Settings().tiers, None, None)
    costs = example_costs(examples, WEAK, STRONG, prices)
    results: list[Evaluation] = []
    for trainer in trainers(embedder, cascade):
        started = time.perf_counter()
        paid = cascaded(costs) if is_cascade(trainer) else costs
        results.append(cross_validated(trainer, examples, WEAK, STRONG, 5, 0, paid))
        print(f"{name}: {results[-1].name} {time.perf_counter() - started:.0f} s", file=sys.stderr)
    results += references(examples, WEAK, STRONG, costs)
    return {
        "dataset": name,
        "prompts": len(examples),
        "routers": [
            {
                "name": e.name,
                "apgr": round(e.summary.apgr, 4),
                "cpt50": e.summary.cpt50,
                "cpt80": e.summary.cpt80,
                "share_for_95pct_strong": e.summary.share_for_95pct_strong,
                "cost_per_1k_at_95pct": None
                if e.summary.cost_per_1k_at_95pct is None
                else float(e.summary.cost_per_1k_at_95pct),
            }
            for e in results
        ],
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def latency(examples: list[Any], folder: Path) -> list[dict[str, Any]]:
    """Each trained policy's decision time, on prompts it has not embedded before."""
    data = from_examples(examples, [WEAK, STRONG])
    vectors = shared_embedder().embed(data.texts)
    settings = Settings()
    tiers = {settings.tier_names[0]: WEAK, settings.tier_names[-1]: STRONG}
    count = 200 + 64 * 16
    cycled = [examples[i % len(examples)] for i in range(count)]
    probes = [f"{e.prompt}\n(probe {i})" for i, e in enumerate(cycled)]
    rows = []
    for kind in ("prompt-length", *KINDS):
        if kind == "prompt-length":
            policy: Any = None
        else:
            path = artifacts.save(train(kind, data, vectors), folder / f"{kind}.rqa").version
            section = settings.routing.model_validate(
                {"policy": {"name": kind, "artifact": str(folder / f"{kind}.rqa"), "tiers": tiers}}
            ).policy
            policy = build_learned(section, settings)  # type: ignore[arg-type]
            policy._embedder = UniversalSentenceEncoder()  # a cold cache: embedding is timed
            assert isinstance(policy, LearnedPolicy) and path
        single, batch = [], []
        for i in range(200):
            view = QueryView(text=probes[i], token_count=0)
            started = time.perf_counter()
            if policy is None:
                PromptLength().scores([cycled[i]])
            else:
                policy.decide(view)
            single.append(time.perf_counter() - started)
        for start in range(200, 200 + 64 * 16, 64):
            views = [QueryView(text=t, token_count=0) for t in probes[start : start + 64]]
            started = time.perf_counter()
            if policy is None:
                PromptLength().scores(cycled[start : start + 64])
            else:
                policy.decide_many(views)
            batch.append(time.perf_counter() - started)
        rows.append(
            {"policy": kind, "single": _percentiles(single), "batch64": _percentiles(batch)}
        )
        print(f"latency {kind}: {rows[-1]}", file=sys.stderr)
    return rows


def _share(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def verdicts(block: dict[str, Any]) -> list[str]:
    """Each target of the dataset against the best router that may be held to it: prompt-only
    routers for the prompt targets, the cascades for the cascade targets."""
    lines = []
    for label, target in TARGETS.items():
        if label.removesuffix(" cascade") != block["dataset"]:
            continue
        cascade = label.endswith("cascade")
        eligible = [
            r
            for r in block["routers"]
            if r["name"] not in ("random", "oracle") and ("cascade" in r["name"]) == cascade
        ]
        best_apgr = max(eligible, key=lambda r: r["apgr"])
        parts = [
            f"APGR {best_apgr['apgr']:.3f} ({best_apgr['name'].split(' (')[0]}) against "
            f">= {target['apgr']}: {'met' if best_apgr['apgr'] >= target['apgr'] else 'missed'}"
        ]
        if "share95" in target:
            shares = [r for r in eligible if r["share_for_95pct_strong"] is not None]
            best = min(shares, key=lambda r: r["share_for_95pct_strong"])
            share = best["share_for_95pct_strong"]
            parts.append(
                f"{share:.1%} strong calls at 95% ({best['name'].split(' (')[0]}) against "
                f"<= {target['share95']:.0%}: "
                f"{'met' if share <= target['share95'] + 1e-9 else 'missed'}"
            )
        kind = "cascade" if cascade else "prompt-only"
        lines.append(f"Target, {kind}: " + "; ".join(parts) + ".")
    return lines


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Routing policies on the RouteLLM outcome data",
        "",
        "Generated by `bench/routing.py`; reproduce with",
        "",
        "    .venv/bin/python bench/routing.py --data DIR --out bench/routing",
        "",
        "DIR holds RouteLLM's per-prompt outcome files `gsm8k.jsonl` and `mmlu.jsonl` (Apache-2.0, "
        "not shipped with routeq), in the format of docs/evaluation.md.",
        "",
        f"Machine: {report['machine']}. Weak model {WEAK}, strong model {STRONG}. Quality: "
        "5-fold cross-validation, seed 0 (every prompt scored by a router that never saw it), "
        "default options for every policy on every dataset. Costs per 1,000 queries at the "
        "default ladder's cheap and frontier prices; a cascade pays the cheap call on every "
        "query (for `+ cascade` that is an upper bound). The cascade reads Mixtral's stored "
        "GSM8K answers, so it exists for GSM8K only; the other policies read the prompt alone.",
        "",
    ]
    for block in report["quality"]:
        lines += [
            f"## {block['dataset']} ({block['prompts']} prompts)",
            "",
            "| router | APGR | CPT(50%) | CPT(80%) | strong share for 95% | $/1k at 95% |",
            "|---|---|---|---|---|---|",
        ]
        for r in block["routers"]:
            cost = r["cost_per_1k_at_95pct"]
            lines.append(
                f"| {r['name']} | {r['apgr']:.3f} | {_share(r['cpt50'])} | {_share(r['cpt80'])} "
                f"| {_share(r['share_for_95pct_strong'])} | "
                f"{'n/a' if cost is None else f'${cost:.4f}'} |"
            )
        lines += ["", *verdicts(block)]
        lines.append("")
    lines += [
        "## Decision latency",
        "",
        "Routers trained on all of GSM8K; each decision embeds its prompt (a cold cache) and "
        "predicts. 200 single decisions, 16 batches of 64.",
        "",
        "The sentence embedding is most of a knn or matrix-factorisation decision (one core, "
        "NumPy); batches share its cost. The expected-gain default reads no embedding. Measured "
        "on the 2-core machine while other work ran on it: read the numbers as an order of "
        "magnitude.",
        "",
        "| policy | single median | single p99 | batch of 64 median | batch of 64 p99 |",
        "|---|---|---|---|---|",
    ]
    for row in report["latency"]:
        s, b = row["single"], row["batch64"]
        lines.append(
            f"| {row['policy']} | {s['median_ms']:.2f} ms | {s['p99_ms']:.2f} ms | "
            f"{b['median_ms']:.1f} ms | {b['p99_ms']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder of gsm8k.jsonl and mmlu.jsonl")
    parser.add_argument("--out", type=Path, default=Path("bench/routing"))
    parser.add_argument("--cache", type=Path, default=Path(".routeq/embeddings.sqlite"))
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = parser.parse_args()
    if not args.render and args.data is None:
        parser.error("--data is required (or --render to rewrite the .md from the .json)")
    if args.render:
        report = json.loads(args.out.with_suffix(".json").read_text())
        args.out.with_suffix(".md").write_text(markdown(report))
        return
    embedder = shared_embedder(args.cache)
    gsm8k = read_outcomes(args.data / "gsm8k.jsonl")
    mmlu = read_outcomes(args.data / "mmlu.jsonl")
    report = {
        "command": "bench/routing.py --data DIR --out bench/routing",
        "machine": f"{platform.machine()}, {platform.python_version()}, "
        f"{__import__('os').cpu_count()} cores",
        "quality": [
            quality("gsm8k", gsm8k, embedder, True),
            quality("mmlu", mmlu, embedder, False),
            quality("mmlu without maths", without_domain(mmlu, MATHS), embedder, False),
        ],
    }
    with tempfile.TemporaryDirectory() as folder:
        report["latency"] = latency(gsm8k, Path(folder))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))


if __name__ == "__main__":
    main()
