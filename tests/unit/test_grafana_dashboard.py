"""The Grafana dashboard in ops/grafana queries only metrics and labels that routeq exports.

The exported names come from ``routeq.metrics.metric_families`` run on a snapshot with a row of
every kind, so renaming a metric or a label there (or a status in the ledger models) breaks this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import Metric

from routeq.ledger.models import HopKind, QueryStatus
from routeq.metrics import (
    JUDGE_ERROR_OUTCOMES,
    LATENCY_BUCKETS_S,
    QUERY_LATENCY_BUCKETS_S,
    LatencyRow,
    QueryLatencyRow,
    Savings,
    Snapshot,
    metric_families,
)

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "routeq-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def full_snapshot() -> Snapshot:
    tiers = ["cheap", "frontier"]
    kinds = [kind.value for kind in HopKind]
    statuses = [status.value for status in QueryStatus]
    finished = [QueryStatus.DONE.value, QueryStatus.FAILED.value]
    snapshot = Snapshot(
        database_up=True,
        broker_up=True,
        queries=[(status, 1) for status in statuses],
        finished=[(status, tier, 1) for status in finished for tier in tiers],
        shadows_finished=[(status, "frontier", 1) for status in finished],
        shadows_compared=[("cheap", "frontier", 1)],
        shadow_quality_gain=[("cheap", "frontier", Decimal("-0.1"))],
        hops=[(kind, tier, status, 1) for kind in kinds for tier in tiers for status in finished],
        escalations=[(tier, 1) for tier in tiers],
        cost=[(kind, tier, Decimal("0.01")) for kind in kinds for tier in tiers],
        latency=[
            LatencyRow(kind, tier, 2, 300, tuple(1 for _ in LATENCY_BUCKETS_S))
            for kind in kinds
            for tier in tiers
        ],
        verdicts=[(tier, passed, 1) for tier in tiers for passed in (True, False)],
        queue_depth=[("route", 0), ("judge", 1), ("tier.cheap", 2)],
        batch_documents=[(status, 1) for status in (*statuses, "rejected", "unsubmitted")],
        reconciler=[("runs", 3), ("republished", 2), ("settled", 1), ("unknown_requests", 1)],
        oldest_live_hop_s=[("queued", 4.5), ("running", 1.5)],
        budgets=[("daily", "alice", 1.0, 0.5, 0.1, 2)],
        endpoints=[("frontier", "sim-large", True, 5, 1.5), ("judge", "sim-judge", False, 0, 0)],
        requests=[(outcome, 1) for outcome in ("pending", "ok", "error", "unknown")],
        provider_errors=[
            (kind, tier, "sim-small", status, 1)
            for kind in ("call", "judge")
            for tier in tiers
            for status in ("429", "500", "none")
        ],
        tokens=[
            (k, t, d, 5) for k in ("call", "judge") for t in tiers for d in ("input", "output")
        ],
        query_latency=[
            QueryLatencyRow(status, 2, 3.0, tuple(1 for _ in QUERY_LATENCY_BUCKETS_S))
            for status in finished
        ],
        judge_errors=[(tier, outcome, 1) for tier in tiers for outcome in JUDGE_ERROR_OUTCOMES],
        savings=Savings("frontier", Decimal("0.02"), Decimal("0.01")),
    )
    empty = [f.name for f in fields(snapshot) if getattr(snapshot, f.name) == []]
    assert not empty, f"fill these Snapshot fields too: {empty}"
    return snapshot


FAMILIES: dict[str, Metric] = {family.name: family for family in metric_families(full_snapshot())}
# sample name (routeq_hops_total, routeq_model_latency_seconds_bucket, ...) -> label -> values
SAMPLES: dict[str, dict[str, set[str]]] = {}
for _family in FAMILIES.values():
    for _sample in _family.samples:
        _labels = SAMPLES.setdefault(_sample.name, {})
        for _label, _value in _sample.labels.items():
            _labels.setdefault(_label, set()).add(_value)

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
METRIC_REF = re.compile(r"\b(routeq_[A-Za-z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"\blabel_values\(\s*(routeq_\w+)\s*,\s*(\w+)\s*\)")
PLAIN_ALTERNATION = re.compile(r"[\w.]+(?:\|[\w.]+)*")
# Bare identifiers that are PromQL syntax, not metric names (functions are followed by "(").
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def family_of(name: str) -> Metric | None:
    """The exported family a name in PromQL refers to, stripping counter/histogram suffixes."""
    family = FAMILIES.get(name)
    if family is not None and family.type not in SUFFIXES:
        return family
    for kind, suffixes in SUFFIXES.items():
        for suffix in suffixes:
            family = FAMILIES.get(name.removesuffix(suffix))
            if name.endswith(suffix) and family is not None and family.type == kind:
                return family
    return None


def argument_after(expr: str, start: int) -> str | None:
    """The parenthesised expression starting at ``start`` (after whitespace), or None."""
    start += len(expr[start:]) - len(expr[start:].lstrip())
    if not expr.startswith("(", start):
        return None
    depth = 0
    for i in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[start + 1 : i]
    return None


def problems(expr: str) -> list[str]:
    """What in one PromQL expression does not match routeq's exported metrics."""
    found: list[str] = []
    refs = METRIC_REF.findall(expr)
    if not refs:
        found.append(f"no routeq_ metric in {expr!r}")
    for name, selector in refs:
        family = family_of(name)
        if family is None or name not in SAMPLES:
            found.append(f"{name}: not a metric routeq exports ({sorted(SAMPLES)})")
            continue
        labels = SAMPLES[name]
        for label, op, value in MATCHER.findall(selector):
            if label not in labels:
                found.append(f"{name}: no label {label!r} (has {sorted(labels)})")
            elif "$" in value or op not in ("=", "=~"):
                continue
            elif op == "=" or PLAIN_ALTERNATION.fullmatch(value):
                missing = [v for v in value.split("|") if v not in labels[label]]
                if missing:
                    found.append(f"{name}: {label} is never {missing} ({sorted(labels[label])})")
    for match in GROUPING.finditer(expr):
        argument = argument_after(expr, match.end())
        if argument is None:
            found.append(f"write the grouping before the argument: {match.group(0)!r}")
            continue
        grouped = [label.strip() for label in match.group(1).split(",") if label.strip()]
        for name, _ in METRIC_REF.findall(argument):
            for label in grouped:
                if name in SAMPLES and label not in SAMPLES[name]:
                    found.append(f"{name}: grouped by {label!r}, which it does not have")
    for name, label in LABEL_VALUES.findall(expr):
        if label not in SAMPLES.get(name, {}):
            found.append(f"label_values({name}, {label}): no such metric or label")
    # Anything else that reads like a metric name is a typo of one (e.g. "rouetq_hops_total").
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]', " ", LABEL_VALUES.sub(" ", expr))
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    for word in re.findall(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", bare):
        if word not in KEYWORDS and not word.startswith("routeq_"):
            found.append(f"{word}: not a routeq metric")
    return found


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = [
        (f"panel {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"variable {variable['name']}", query.get("query", query)))
    return found


def test_dashboard_identity_and_variables() -> None:
    dashboard = load()
    assert dashboard["uid"] == "routeq-overview"
    assert dashboard["title"] == "routeq: routing, cost and quality"
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    tier = variables["tier"]
    assert tier["type"] == "query" and tier["datasource"] == DATASOURCE
    assert tier["query"]["query"] == "label_values(routeq_hops_total, tier)"
    # route hops have no tier label: "All" must be .* (which matches a missing label) to keep them
    assert tier["includeAll"] and tier["allValue"] == ".*"


def test_panels_have_unique_ids_and_non_overlapping_grid_positions() -> None:
    panels = list(all_panels(load()))
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_panel_queries_the_prometheus_datasource_variable() -> None:
    for panel in all_panels(load()):
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "bargauge"}, panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert all(t["datasource"] == DATASOURCE and t["expr"].strip() for t in targets)


def test_dashboard_uses_only_exported_metrics_and_labels() -> None:
    found = [f"{where}: {problem}" for where, expr in queries(load()) for problem in problems(expr)]
    assert found == []


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(routeq_hopz_total[5m]))",  # renamed metric
        "sum(rate(routeq_queue_depth_total[5m]))",  # a gauge has no _total
        "sum(rate(routeq_hops_bucket[5m]))",  # a counter has no buckets
        'sum(rate(routeq_hops_total{queue="route"}[5m]))',  # label of another metric
        'sum(rate(routeq_judge_verdicts_total{passed="True"}[5m]))',  # never exported value
        'sum(routeq_queries{status=~"queued|pending"})',  # not a query status
        "sum by (tier) (routeq_queue_depth)",  # grouped by a label it lacks
        "sum(routeq_queue_depth) by (tier)",  # grouping the check cannot see
        "sum(rate(routeq_hops_total[5m])) / sum(rate(rouetq_hops_total[5m]))",  # typo
        "label_values(routeq_hops_total, queue)",
    ],
)
def test_the_check_catches_mistakes(expr: str) -> None:
    assert problems(expr)


def test_the_check_accepts_the_exported_names() -> None:
    assert set(SAMPLES) >= {"routeq_hops_total", "routeq_model_latency_seconds_bucket"}
    bucket = 'routeq_model_latency_seconds_bucket{kind="call", tier=~"$tier"}'
    assert not problems(f"histogram_quantile(0.95, sum by (tier, le) (rate({bucket}[5m])))")
