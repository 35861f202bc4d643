"""Training data from your own traffic: the ledger's judged answers as an outcome file.

``routeq export-outcomes`` writes one line per closed user query in the format that
``routeq.evaluation.outcomes`` reads (docs/evaluation.md), with an outcome for each tier that
answered the query and whose answer a judge gave a verdict on (docs/training-data.md says
exactly which). So a routing policy can be trained and measured on the traffic it will route,
not only on public benchmarks.

The prompt and answer texts leave Postgres only into the file the user named; what this module
returns, and the command prints, are counts.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from routeq.errors import UsageError
from routeq.ledger.repository import JudgedAnswer, JudgedQuery

KeyBy = Literal["tier", "model"]
KEYS: tuple[KeyBy, ...] = ("tier", "model")
BENCHMARK = "ledger"  # the ``benchmark`` of every exported line


@dataclass(frozen=True)
class ExportCounts:
    """What an export wrote: lines (one per query), outcomes in all, outcomes per key (tier or
    model name), and the lines with outcomes of two keys or more (the pairs a router's
    quality curve can be measured on)."""

    queries: int = 0
    outcomes: int = 0
    per_key: dict[str, int] = field(default_factory=dict)
    several: int = 0


def key_by(value: str) -> KeyBy:
    """``--tier-as``: key outcomes by tier name (``tier``) or by the tier's model (``model``)."""
    for key in KEYS:
        if value == key:
            return key
    raise UsageError(f"--tier-as must be one of {', '.join(KEYS)}, not {value!r}")


def parse_since(value: str, option: str = "--since") -> datetime:
    """``--since`` (or ``option``): an ISO 8601 date (midnight UTC) or date and time; a time
    without an offset is UTC."""
    try:
        since = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not an ISO 8601 date or time "
            "(e.g. 2024-05-01, 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00)"
        ) from None
    return since if since.tzinfo is not None else since.replace(tzinfo=UTC)


def answer_score(answer: JudgedAnswer) -> float:
    """The label of one judged answer, between 0 and 1.

    When the LLM judge scored the answer, its score over 10 (``judge_score / 10``: 7/10 is
    0.7), kept within [0, 1]; when the heuristic checks decided alone (no judge model
    configured, or a check failed the answer before the judge was asked), 1.0 for a pass and
    0.0 for a fail. A person's feedback outranks both: a thumbs-down is 0.0, a thumbs-up 1.0."""
    if answer.rating == "down":
        return 0.0
    if answer.rating == "up":
        return 1.0
    if answer.judge_score is not None and math.isfinite(answer.judge_score):
        return min(max(answer.judge_score / 10.0, 0.0), 1.0)
    return 1.0 if answer.passed else 0.0


def outcome_record(query: JudgedQuery, keyed_by: KeyBy = "tier") -> dict[str, Any]:
    """One line of the outcome file for ``query``.

    ``prompt`` is the query's text, which is what the route step shows a policy as
    ``QueryView.text`` (for a chat query, its last user turn); a chat query's turns go in
    ``messages`` as well (an extra field, which readers keep in ``Example.extra``), ``routed``
    names the tier the route step chose and the policy and version that chose it, and a query
    that exploration routed says so in ``explore`` (the tier it drew, the policy's choice and
    the share in force: the random sample that training can weight to). Should one
    key be judged twice on a query (two tiers on one model keyed by model, or a hook that moved
    a call back down), the later verdict counts. The answers of the query's shadows and re-run
    label the tiers its own answers did not reach."""
    outcomes: dict[str, dict[str, Any]] = {}
    own = sorted((a for a in query.answers if a.via is None), key=lambda a: a.seq)
    for answer in own:
        key = answer.tier if keyed_by == "tier" else (answer.model or answer.tier)
        outcomes[key] = {"score": answer_score(answer), "response": answer.response}
    for answer in (a for a in query.answers if a.via is not None):
        # a shadow's or a re-run's answer labels a tier the query itself did not answer
        key = answer.tier if keyed_by == "tier" else (answer.model or answer.tier)
        outcomes.setdefault(key, {"score": answer_score(answer), "response": answer.response})
    record: dict[str, Any] = {
        "id": str(query.id),
        "benchmark": BENCHMARK,
        "domain": query.domain,
        "prompt": query.text,
        "outcomes": outcomes,
    }
    if query.route_tier is not None:
        record["routed"] = {
            "tier": query.route_tier,
            "policy": query.policy,
            "version": query.policy_version,
        }
    if query.messages:
        record["messages"] = query.messages
    if query.explored:
        record["explore"] = {
            "tier": query.route_tier,
            "policy_choice": query.policy_choice,
            "share": query.explore_share,
        }
    return record


def write_outcomes(queries: Iterable[JudgedQuery], out: Path, keyed_by: KeyBy) -> ExportCounts:
    """Write ``queries`` to ``out`` as outcome lines, one at a time (``queries`` may stream a
    whole ledger), and count them. The file appears whole: it is written beside ``out`` and
    renamed at the end, so an interrupted export leaves the previous file in place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    lines = labels = several = 0
    per_key: Counter[str] = Counter()
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as file:
            for query in queries:
                record = outcome_record(query, keyed_by)
                if not record["outcomes"]:
                    continue
                # Not ASCII-escaped: the outcome reader splits lines at "\n" only, so a U+2028
                # inside a prompt stays inside its line.
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
                lines += 1
                labels += len(record["outcomes"])
                several += len(record["outcomes"]) > 1
                per_key.update(record["outcomes"].keys())
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
        if isinstance(queries, Generator):
            queries.close()  # a streaming read holds its connection until closed
    return ExportCounts(lines, labels, dict(sorted(per_key.items())), several)


def describe(counts: ExportCounts, out: Path) -> str:
    """The console's summary of an export: counts only, never a prompt or an answer."""
    if not counts.queries:
        return f"{out}: no closed user query with a judged answer matched; the file is empty"
    per_key = ", ".join(f"{key} {n}" for key, n in counts.per_key.items())
    return (
        f"{out}: {counts.queries} queries, {counts.outcomes} outcomes ({per_key}); "
        f"{counts.several} queries have outcomes of two or more"
    )
