"""The Prometheus alerting rules in ops/ and `routeq report --check` enforce the same limits,
and the rules read only metrics that `routeq metrics` exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from routeq.alerts import breaches
from routeq.config import AlertsConfig, Settings
from routeq.metrics import Snapshot, fill_from_rollup, metric_families

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "routeq-alerts.yml"
# alert -> the [alerts] field whose default its threshold must equal
SAME_AS_CONFIG = {
    "RouteqEscalationRateHigh": "max_escalation_rate",
    "RouteqProviderErrorRateHigh": "max_error_rate",
    "RouteqAnswersAcceptedUnjudged": "max_unjudged_share",
    "RouteqQueriesFailing": "max_failed_share",
}


def rules() -> dict[str, Any]:
    document = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def exported_names(settings: Settings) -> set[str]:
    # A budget's series exist once a budget is configured and used, and the endpoints' once the
    # exporter has read the broker: both are, here.
    snapshot = Snapshot(
        database_up=True,
        budgets=[("daily", "alice", 1.0, 0.5, 0.1, 0)],
        endpoints=[("frontier", "sim-large", False, 0, 0.0)],
    )
    fill_from_rollup(snapshot, {}, settings)
    registry = CollectorRegistry()

    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return metric_families(snapshot)

    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_thresholds_equal_the_report_checks_defaults() -> None:
    found = rules()
    defaults = AlertsConfig()
    for alert, field in SAME_AS_CONFIG.items():
        expr = found[alert]["expr"]
        threshold = float(re.findall(r"\)\s*>\s*([0-9.]+)", expr)[0])
        assert threshold == getattr(defaults, field), alert
        # and, as min_queries does, a rate is judged only on enough finished queries
        assert f">= {defaults.min_queries}" in expr, alert


def test_shadow_quality_drop_rule_matches_the_report_check() -> None:
    expr = rules()["RouteqShadowQualityDrop"]["expr"]
    defaults = AlertsConfig()
    threshold = float(re.findall(r"\)\s*>\s*([0-9.]+)", expr)[0])
    assert threshold == defaults.max_shadow_quality_drop
    assert f"routeq_shadows_compared_total[1d])) >= {defaults.min_shadows}" in expr


def test_every_rule_reads_metrics_routeq_exports(settings: Settings) -> None:
    names = exported_names(settings)
    for alert, rule in rules().items():
        used = set(re.findall(r"\b(routeq_[a-z_]+)", rule["expr"]))
        assert used and used <= names, (alert, used - names)


def test_rates_are_not_judged_on_a_handful_of_queries() -> None:
    # Given 3 escalations in 5 queries: 60%, but five queries are noise
    totals = {"escalation_rate": 0.6}
    assert breaches(totals, 5, AlertsConfig()) == []
    # and on 50 queries the same rate is an alert that says why
    [breach] = breaches(totals, 50, AlertsConfig())
    assert breach.rule == "escalation_rate"
    assert "60.0%" in breach.message and "30.0%" in breach.message


def test_cost_and_latency_limits_are_off_until_set() -> None:
    totals = {"cost_per_query": 5.0, "latency_p99_s": 900.0}
    assert breaches(totals, 100, AlertsConfig()) == []
    limits = AlertsConfig(max_cost_per_query=0.01, max_p99_latency_s=60)
    assert [b.rule for b in breaches(totals, 1, limits)] == ["cost_per_query", "p99_latency"]


def test_the_shadow_quality_drop_is_judged_on_enough_compared_shadows() -> None:
    # Given shadows that scored 5 points in 100 better than the answers kept
    totals = {"shadow_quality_gain": 0.05, "shadows_compared": 12}
    # twelve comparisons are too few to say routing costs quality
    assert breaches(totals, 1000, AlertsConfig()) == []
    # forty are enough, whatever the number of queries
    [breach] = breaches({**totals, "shadows_compared": 40}, 1, AlertsConfig())
    assert breach.rule == "shadow_quality_drop"
    assert "5.0%" in breach.message and "3.0%" in breach.message
    # a shadow sample that did no better than the kept answers is no alert
    assert breaches({"shadow_quality_gain": 0.0, "shadows_compared": 400}, 1, AlertsConfig()) == []
