"""Outcome files: one JSON object a line, a prompt and how each model did on it.

The format (documented in docs/evaluation.md)::

    {"id": "gsm8k-17", "benchmark": "gsm8k", "domain": "",
     "prompt": "...",
     "outcomes": {"weak-model": {"score": 1.0, "response": "..."},
                  "strong-model": {"score": 0.0}}}

``score`` is in [0, 1] (1 correct); ``response`` is optional; ``domain`` (an MMLU subject, say)
is metadata that the prompt text does not contain, so a policy that reads it must say so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routeq.errors import InvalidQueryError


class OutcomeFileError(InvalidQueryError):
    """An outcome file that cannot be read as documented; the message names the line."""


@dataclass(frozen=True)
class Outcome:
    score: float
    response: str | None = None


@dataclass(frozen=True)
class Example:
    """One prompt with the outcome of every model that answered it."""

    id: str
    prompt: str
    outcomes: Mapping[str, Outcome]
    benchmark: str = ""
    domain: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def score(self, model: str) -> float:
        return self.outcomes[model].score


def read_outcomes(path: Path) -> list[Example]:
    """Every example of an outcome file, or OutcomeFileError naming the first bad line."""
    try:
        # Lines end at "\n" only: str.splitlines would also cut at U+2028 and friends, which
        # JSON strings may hold unescaped.
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise OutcomeFileError(f"{path}: cannot read the outcome file ({error})") from error
    examples = list(parse_outcomes(lines, str(path)))
    if not examples:
        raise OutcomeFileError(f"{path}: no examples (one JSON object a line expected)")
    return examples


def parse_outcomes(lines: Iterable[str], source: str = "outcomes") -> Iterator[Example]:
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise OutcomeFileError(f"{where}: invalid JSON ({error.msg})") from None
        example = _example(record, where)
        if example.id in seen:
            raise OutcomeFileError(f"{where}: id {example.id!r} appears twice")
        seen.add(example.id)
        yield example


def _example(record: Any, where: str) -> Example:
    if not isinstance(record, dict):
        raise OutcomeFileError(f"{where}: expected a JSON object")
    identifier, prompt, outcomes = record.get("id"), record.get("prompt"), record.get("outcomes")
    if not isinstance(identifier, str) or not identifier:
        raise OutcomeFileError(f"{where}: 'id' must be a non-empty string")
    if not isinstance(prompt, str):
        raise OutcomeFileError(f"{where}: 'prompt' must be a string")
    if not isinstance(outcomes, dict) or not outcomes:
        raise OutcomeFileError(f"{where}: 'outcomes' must map model names to {{'score': ...}}")
    parsed: dict[str, Outcome] = {}
    for model, outcome in outcomes.items():
        score = outcome.get("score") if isinstance(outcome, dict) else None
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise OutcomeFileError(f"{where}: outcome of {model!r} needs a numeric 'score'")
        if not (math.isfinite(score) and 0 <= score <= 1):
            raise OutcomeFileError(f"{where}: score of {model!r} must be between 0 and 1")
        response = outcome.get("response")
        parsed[model] = Outcome(float(score), response if isinstance(response, str) else None)
    known = {"id", "prompt", "outcomes", "benchmark", "domain"}
    return Example(
        id=identifier,
        prompt=prompt,
        outcomes=parsed,
        benchmark=str(record.get("benchmark") or ""),
        domain=str(record.get("domain") or ""),
        extra={key: value for key, value in record.items() if key not in known},
    )


def models_of(examples: Iterable[Example]) -> list[str]:
    """The models every example has an outcome for, in the first example's order."""
    examples = list(examples)
    if not examples:
        return []
    common = set(examples[0].outcomes)
    for example in examples[1:]:
        common &= set(example.outcomes)
    return [model for model in examples[0].outcomes if model in common]


def observed_pairs(examples: Iterable[Example], weak: str, strong: str) -> list[Example]:
    """The examples with outcomes of both ``weak`` and ``strong``, in order.

    An outcome file from the ledger (``routeq export-outcomes``) has an outcome only for the
    tiers that answered each query: a query the policy sent straight to the top tier has no
    weak outcome. A quality curve compares the two models on the same prompts, so it can only
    be measured on the prompts both were observed on; the caller says how many it dropped.
    """
    return [e for e in examples if weak in e.outcomes and strong in e.outcomes]
