"""A batch's results for people and programs: totals, JSONL, a Markdown digest, a rich table."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from rich.table import Table
from rich.text import Text

from routeq.batch.overview import BatchSummary
from routeq.config import TierConfig
from routeq.ledger.batches import DocumentResult
from routeq.pricing import counterfactual_cost
from routeq.summary_spec import SummarySpec

OutputFormat = Literal["jsonl", "md"]


@dataclass(frozen=True)
class BatchTotals:
    documents: int
    done: int
    failed: int
    rejected: int
    pending: int
    reused: int
    split: int
    cost: Decimal  # what the batch paid: every call, judge and retry of its own queries
    done_cost: Decimal  # what the done documents it summarised itself cost (the comparable set)
    top_tier: str
    top_tier_estimate: Decimal  # those same documents from the top tier, one call each
    escalated: int
    tier_share: dict[str, float]  # final tier of the done documents
    shadow_cost: Decimal = Decimal(0)  # the part of ``cost`` that shadow A/B samples paid

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.done if self.done else 0.0

    @property
    def saved(self) -> float:
        """Share saved against the top tier, over the same documents (done, not reused)."""
        if not self.top_tier_estimate:
            return 0.0
        return float(1 - self.done_cost / self.top_tier_estimate)


def batch_totals(
    results: list[DocumentResult],
    top: TierConfig,
    spec: SummarySpec,
    cost: Decimal,
    shadow_cost: Decimal = Decimal(0),
) -> BatchTotals:
    """Totals over a batch's documents. The top-tier estimate is the all-top-tier
    counterfactual of the ledger's views, over the documents this batch summarised itself:
    every query of theirs (parts and combines too) sent straight to the top tier, with the
    tokens of the calls whose answers they kept, at the top tier's prices. ``spec`` is not
    needed for it any more (the tokens are recorded, not re-counted)."""
    states = Counter(result.status for result in results)
    compared = [result for result in results if result.status == "done" and not result.reused]
    done_cost = sum((result.cost for result in compared), Decimal(0))
    estimate = counterfactual_cost(
        top,
        sum(result.top_tier_input_tokens for result in compared),
        sum(result.top_tier_output_tokens for result in compared),
    )
    done = [result for result in results if result.status == "done"]
    finals = Counter(result.final_tier or "?" for result in done)
    return BatchTotals(
        documents=len(results),
        done=states["done"],
        failed=states["failed"],
        rejected=states["rejected"],
        pending=states["queued"] + states["running"] + states["unsubmitted"],
        reused=sum(result.reused for result in results),
        split=sum(result.parts > 0 for result in results),
        cost=cost,
        done_cost=done_cost,
        top_tier=top.name,
        top_tier_estimate=estimate,
        escalated=sum(result.escalated for result in done),
        tier_share={tier: count / len(done) for tier, count in sorted(finals.items())},
        shadow_cost=shadow_cost,
    )


def result_record(result: DocumentResult) -> dict[str, Any]:
    """One JSONL line: a document's summary and how it was produced."""
    return {
        "type": "document",
        "id": result.doc_id,
        "source": result.source,
        "status": result.status,
        "summary": result.summary,
        "reason": result.reason,
        "tier_path": result.tier_path,
        "final_tier": result.final_tier,
        "final_model": result.final_model,
        "parts": result.parts,
        "cost": float(result.cost),
        "reused": result.reused,
        "escalated": result.escalated,
        "verdicts": result.verdicts,
        "query_id": None if result.query_id is None else str(result.query_id),
    }


def totals_record(totals: BatchTotals) -> dict[str, Any]:
    """The JSONL file's last line. Money is a JSON number (see routeq.jsonout)."""
    data = asdict(totals)
    data.update(
        type="totals",
        cost=float(totals.cost),
        done_cost=float(totals.done_cost),
        top_tier_estimate=float(totals.top_tier_estimate),
        shadow_cost=float(totals.shadow_cost),
        escalation_rate=round(totals.escalation_rate, 4),
        saved=round(totals.saved, 4),
    )
    return data


def write_results(
    path: Path, fmt: OutputFormat, name: str, results: list[DocumentResult], totals: BatchTotals
) -> None:
    """Write the results (every document, then the totals) atomically: a reader never sees
    half a file, and an interrupted write leaves the previous file in place."""
    if fmt == "jsonl":
        lines = [json.dumps(result_record(r), ensure_ascii=False) for r in results]
        lines.append(json.dumps(totals_record(totals)))
        body = "\n".join(lines) + "\n"
    else:
        body = markdown_digest(name, results, totals)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(body, encoding="utf-8")
    partial.replace(path)


def markdown_digest(name: str, results: list[DocumentResult], totals: BatchTotals) -> str:
    """A readable digest: each document's summary with how it was made, then the totals."""
    out = [f"# Summaries: {name}", ""]
    for result in results:
        out += [f"## {result.doc_id}", ""]
        if result.status == "done":
            how = " → ".join(result.tier_path) or result.final_tier or "?"
            if result.parts:
                how = f"{result.parts} parts, combined on {how}"
            extra = " · reused" if result.reused else ""
            out += [
                (result.summary or "").strip(),
                "",
                f"*{result.source} · {how} · ${result.cost:.6f}{extra}*",
                "",
            ]
        else:
            out += [f"**{result.status}**: {result.reason or 'in progress'}", ""]
    out += ["## Totals", "", "| | |", "|---|---|"]
    out += [f"| {label} | {value} |" for label, value in totals_rows(totals)]
    return "\n".join(out) + "\n"


def totals_rows(totals: BatchTotals) -> list[tuple[str, str]]:
    share = ", ".join(f"{tier} {fraction:.0%}" for tier, fraction in totals.tier_share.items())
    return [
        ("documents", str(totals.documents)),
        ("done", str(totals.done)),
        ("failed", str(totals.failed)),
        ("rejected", str(totals.rejected)),
        ("pending", str(totals.pending)),
        ("reused (summarised before)", str(totals.reused)),
        ("split into parts", str(totals.split)),
        ("spent (all calls, retries, failures)", f"${totals.cost:.6f}"),
        ("of which shadow A/B samples", f"${totals.shadow_cost:.6f}"),
        ("cost of the documents done", f"${totals.done_cost:.6f}"),
        (f"same documents, all {totals.top_tier} (est.)", f"${totals.top_tier_estimate:.6f}"),
        ("saved", f"{totals.saved:.0%}"),
        ("escalation rate", f"{totals.escalation_rate:.0%} ({totals.escalated} of {totals.done})"),
        ("final tier share", share or "-"),
    ]


def totals_table(totals: BatchTotals, title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in totals_rows(totals):
        table.add_row(label, value)
    return table


def batches_table(found: list[BatchSummary]) -> Table:
    """``routeq batch list``: one row per batch, newest first."""
    table = Table(show_header=True, header_style="bold")
    table.add_column("name", overflow="fold")
    table.add_column("id", no_wrap=True)
    table.add_column("documents", justify="right")
    table.add_column("done", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("spent", justify="right")
    table.add_column("created", no_wrap=True)
    for batch in found:
        table.add_row(
            Text(batch.name),
            str(batch.id),
            str(batch.documents),
            str(batch.done),
            str(batch.failed),
            f"${batch.spent:.6f}",
            batch.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
        )
    return table
