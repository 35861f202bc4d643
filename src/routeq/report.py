"""Rendering ledger rows for people (tables for the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from routeq.ledger import HopView


def hops_table(hops: Sequence[HopView]) -> Table:
    table = Table(title=None, show_lines=False)
    for column in (
        "seq",
        "kind",
        "tier",
        "model",
        "status",
        "tries",
        "tokens in/out",
        "cost $",
        "ms",
        "score",
        "reason / error",
    ):
        table.add_column(column, overflow="fold")
    for hop in hops:
        tokens = "" if hop.input_tokens is None else f"{hop.input_tokens}/{hop.output_tokens}"
        if hop.tokens_estimated:
            tokens += " (est.)"
        table.add_row(
            str(hop.seq),
            hop.kind,
            Text(hop.tier or ""),
            Text(hop.model or ""),
            hop.status,
            str(hop.attempts),
            tokens,
            f"{hop.cost:.6f}",
            str(hop.latency_ms or ""),
            "" if hop.score is None else f"{hop.score:g}",
            Text((hop.error or hop.reason or "")[:120]),  # provider text is not markup
        )
    return table
