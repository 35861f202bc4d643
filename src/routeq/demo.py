"""``routeq demo``: the whole pipeline on one machine, on simulated models.

Runs on the local stack (``routeq.local``), the same code that ``routeq summarize`` starts and
stops: the database and broker (embedded when not configured), the worker groups and a simulated
model server of the demo's own, seeded with ``--seed``. It submits a mixed set of queries, waits,
and prints each query's tier path, verdicts and cost, then totals and what sending everything to
the top tier would have cost.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from routeq.client import Client, Result
from routeq.config import Settings, default_judge, default_tiers
from routeq.local import DEFAULT_LOCAL_WORKERS, local_stack
from routeq.report import QueryTotals, query_totals
from routeq.sim import default_sim_config

DEMO_QUERIES = [
    "hi there",
    "thanks, that helped a lot",
    "good morning",
    "What is the capital of Australia?",
    "Summarise the causes of the French Revolution in three sentences.",
    "How many minutes are in a week?",
    "Explain the difference between TCP and UDP for a new engineer.",
    "Write Python code that reverses a linked list.",
    "Why doesn't my recursive function terminate when n is negative?",
    "Give a proof that the square root of 2 is irrational.",
    "What are good habits for reviewing a pull request?",
    "Translate 'where is the train station' into German and French.",
    "Compare the trade-offs of SQL and NoSQL databases for an analytics workload.",
    "Plan a three-day itinerary for Lisbon: food, museums and a day trip.",
    "Help me debug: my Celery task runs twice after a worker restart.",
    "What does a p-value actually measure?",
]


def demo_queries(count: int) -> list[str]:
    """A mixed workload: chit-chat, ordinary questions, code and proofs, and a long report."""
    long_text = (
        "Quarterly operations report. " + "Revenue grew while support tickets fell; "
        "the team shipped the new billing flow and retired two legacy services. "
        * 12
        + "What are the three main risks for next quarter?"
    )
    base = [*DEMO_QUERIES, long_text]
    return [
        base[i % len(base)] + ("" if i < len(base) else f" (#{i // len(base) + 1})")
        for i in range(count)
    ]


def run_demo(
    base: Settings, *, queries: int, seed: int, keep_running: bool, console: Console
) -> list[Result]:
    """Run ``queries`` demo queries and print the outcome. Whatever routeq.toml says, the demo
    runs the default ladder on simulated models (only the connection URLs and the state
    directory come from ``base``), with workers of its own: its simulator is private to it."""
    console.print(
        "[bold]routeq demo[/bold]: answers come from routeq's [bold yellow]SIMULATED"
        "[/bold yellow] model server, not from a real model."
    )
    settings = Settings(
        tiers=default_tiers(),
        judge=default_judge(),
        state_dir=base.state_dir,
        database_url=base.database_url,
        broker_url=base.broker_url,
    )
    texts = demo_queries(queries)
    with local_stack(
        settings,
        workers=DEFAULT_LOCAL_WORKERS,
        sim=default_sim_config(seed),
        keep_running=keep_running,
    ) as stack:
        for what in stack.started:
            console.print(f"started {what}", highlight=False)
        with Client(stack.settings) as client:
            started = time.monotonic()
            handles = client.submit_many(texts)
            results = [handle.wait(timeout=120) for handle in handles]
            elapsed = time.monotonic() - started
            ids = [result.query_id for result in results]
            totals = query_totals(client.ledger.engine, ids, stack.settings.top_tier)
    _print_results(console, texts, results, elapsed, totals)
    return results


def _print_results(
    console: Console, texts: list[str], results: list[Result], elapsed: float, totals: QueryTotals
) -> None:
    table = Table(
        title="queries (simulated models)",
        caption="verdicts: ✓/✗ with the LLM judge's score; ✗ alone = failed a heuristic check",
    )
    for column in ("#", "query", "route", "tier path", "verdicts", "status", "cost $"):
        table.add_column(column, overflow="fold")
    for index, (text, result) in enumerate(zip(texts, results, strict=True), 1):
        route_hop = next((h for h in result.hops if h.kind == "route"), None)
        verdicts = " ".join(
            ("✓" if h.passed else "✗") + (f"{float(h.score):g}" if h.score is not None else "")
            for h in result.hops
            if h.kind == "judge" and h.passed is not None
        )
        table.add_row(
            str(index),
            text[:48] + ("…" if len(text) > 48 else ""),
            (route_hop.reason or "").split(":")[0] if route_hop else "",
            " → ".join(result.tier_path),
            verdicts,
            result.status,
            f"{result.total_cost:.6f}",
        )
    console.print(table)
    # The totals are the ledger's views (routeq.report.query_totals), as in `routeq metrics`.
    share = ", ".join(
        f"{final} {count / totals.queries:.0%}" for final, count in totals.final_tiers.items()
    )
    console.print(
        f"queries: {totals.queries} in {elapsed:.1f}s   done: {totals.done}   escalated: "
        f"{totals.escalated} ({totals.escalation_rate:.0%})   final tier share: {share}"
    )
    console.print(
        f"total cost: ${totals.cost:.6f} (routing, judging and escalations included)   "
        f"answered: ${totals.compared_cost:.6f}, all-{totals.top_tier} estimate: "
        f"${totals.counterfactual:.6f}   saved: {totals.saved:.0%}"
    )
