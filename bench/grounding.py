"""How well each summary check, and the LLM judge, tells bad summaries from good ones.

Reads the labelled set that bench/make_summary_set.py made with a real model (SmolLM2-135M)
and the hand labels in bench/data/summary_labels.json, runs every free check of routeq's
summary judging on each item, and reports each check's precision and recall at catching bad
summaries (a check "flags" an item when it would fail it): alone, all free checks together, the
LLM judge (the same model, asked with routeq's judge prompt; a reply with no score is a judge
failure, counted apart), and the free checks and the judge together.

    .venv/bin/python bench/grounding.py          # writes bench/grounding.md and .json

The grounding threshold (``MIN_GROUNDED_SHARE``) was fixed before this set was made. The
table of shares per label and the threshold sweep below it are measured on the same set, so
they describe the set and are not a held-out estimate.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from routeq.config import JudgeConfig
from routeq.judges import heuristic_failure, summary_failure
from routeq.judges.grounding import MIN_GROUNDED_SHARE, grounding, grounding_failure
from routeq.summary_spec import SummarySpec

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT / "bench" / "data" / "summary_set.jsonl"
LABELS = ROOT / "bench" / "data" / "summary_labels.json"
SPEC = SummarySpec(min_words=15, max_words=80)  # what make_summary_set.py asked for
PASS = JudgeConfig().pass_threshold

# reason prefixes of routeq.judges.summary's checks
SUMMARY_CHECKS = {
    "format": "format:",
    "length": "length:",
    "copy": "copy:",
    "numbers": "numbers not in the source",
    "names": "names not in the source",
    "language": "language:",
    "grounding": "not about its source",
}


def load() -> list[dict[str, Any]]:
    labels = {k: v for k, v in json.loads(LABELS.read_text()).items() if not k.startswith("_")}
    items = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    for item in items:
        if item["origin"] == "swapped":
            item["label"] = "bad"  # about another text, by construction
        else:
            item["label"] = labels[item["id"]]["label"]
    return items


def reasons(item: dict[str, Any]) -> list[str]:
    failure = summary_failure(SPEC, item["source"], item["summary"])
    return [] if failure is None else failure.split("; ")


def flags(item: dict[str, Any]) -> dict[str, bool | None]:
    found = reasons(item)
    heuristic = heuristic_failure("", item["summary"], "stop") is not None
    by_check: dict[str, bool | None] = {
        name: any(r.startswith(prefix) for r in found) for name, prefix in SUMMARY_CHECKS.items()
    }
    free = heuristic or bool(found)
    judge = None if item["judge_score"] is None else item["judge_score"] < PASS
    return {
        "heuristics": heuristic,
        **by_check,
        "all free checks": free,
        "LLM judge": judge,
        # a reply with no score is a judge failure: fail closed escalates it (flags it)
        "LLM judge, failing closed": judge is not False,
        "free checks + judge": free or bool(judge),
    }


def scores(
    items: list[dict[str, Any]], flagged_by: list[dict[str, Any]], name: str
) -> dict[str, Any]:
    """Precision and recall of ``name`` at flagging the bad items (``flagged_by``: each item's
    flags); items it could not decide (the judge gave no score) are counted apart, left out."""
    decided = [(item, flags[name]) for item, flags in zip(items, flagged_by, strict=True)]
    pairs = [(item["label"] == "bad", bool(flag)) for item, flag in decided if flag is not None]
    undecided = sum(flag is None for _, flag in decided)
    return {"check": name, **rates(pairs), "undecided": undecided}


def rates(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    """From (is bad, is flagged) pairs: how many flagged, precision, recall, good ones failed."""
    true_pos = sum(bad and flagged for bad, flagged in pairs)
    flagged = sum(flagged for _, flagged in pairs)
    bad = sum(bad for bad, _ in pairs)
    return {
        "flagged": flagged,
        "precision": true_pos / flagged if flagged else None,
        "recall": true_pos / bad if bad else None,
        "good_failed": flagged - true_pos,
    }


def share_table(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label, origin in (("good", "model"), ("bad", "model"), ("bad", "swapped")):
        picked = [i for i in items if i["label"] == label and i["origin"] == origin]
        shares = [grounding(i["source"], i["summary"]).share for i in picked]
        if shares:
            quartiles = statistics.quantiles(shares, n=4) if len(shares) > 1 else shares * 3
            rows.append({"label": label, "origin": origin, "items": len(shares),
                         "q1": quartiles[0], "median": statistics.median(shares),
                         "q3": quartiles[2]})  # fmt: skip
    return rows


def sweep(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        pairs = [
            (
                i["label"] == "bad",
                grounding_failure(i["source"], i["summary"], threshold) is not None,
            )
            for i in items
        ]
        rows.append({"threshold": threshold, **rates(pairs)})
    return rows


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def main() -> None:
    items = load()
    names = [
        "heuristics",
        *SUMMARY_CHECKS,
        "all free checks",
        "LLM judge",
        "LLM judge, failing closed",
        "free checks + judge",
    ]
    flagged_by = [flags(item) for item in items]  # every check run once per item
    table = [scores(items, flagged_by, name) for name in names]
    counts = {
        "items": len(items),
        "good": sum(i["label"] == "good" for i in items),
        "bad (hand-labelled model summaries)": sum(
            i["label"] == "bad" and i["origin"] == "model" for i in items
        ),
        "bad (swapped: another text's summary)": sum(i["origin"] == "swapped" for i in items),
    }
    result = {"counts": counts, "checks": table, "shares": share_table(items),
              "sweep": sweep(items), "threshold": MIN_GROUNDED_SHARE}  # fmt: skip
    (ROOT / "bench" / "grounding.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Summary checks and the LLM judge on real summaries",
        "",
        "`.venv/bin/python bench/grounding.py` (the set: `bench/make_summary_set.py`). Real "
        "summaries by SmolLM2-135M-Instruct (llama.cpp, Q4_1) of the project's own texts, "
        "asked with routeq's summary prompt; the judge is the same model with routeq's judge "
        "prompt and summary rubric (pass at 6 of 10). A check *flags* a summary it would fail; "
        "precision is the share of flagged summaries that are bad, recall the share of bad "
        "summaries flagged.",
        "",
        *(f"- {what}: {n}" for what, n in counts.items()),
        "",
        "| check | flagged | precision | recall | good ones failed | no verdict |",
        "|---|---|---|---|---|---|",
        *(
            f"| {row['check']} | {row['flagged']} | {percent(row['precision'])} | "
            f"{percent(row['recall'])} | {row['good_failed']} | {row['undecided']} |"
            for row in table
        ),
        "",
        f"Grounding shares (content words of the summary found in the source; the check "
        f"fails below {MIN_GROUNDED_SHARE:.0%}):",
        "",
        "| label | origin | items | q1 | median | q3 |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['label']} | {r['origin']} | {r['items']} | {r['q1']:.2f} | "
            f"{r['median']:.2f} | {r['q3']:.2f} |"
            for r in result["shares"]
        ),
        "",
        "The grounding threshold swept over the same set (in-sample: it describes this set, "
        "it does not estimate a threshold's precision elsewhere):",
        "",
        "| threshold | precision | recall |",
        "|---|---|---|",
        *(
            f"| {r['threshold']:.1f} | {percent(r['precision'])} | {percent(r['recall'])} |"
            for r in result["sweep"]
        ),
        "",
    ]
    (ROOT / "bench" / "grounding.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
