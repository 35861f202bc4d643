"""``routeq check`` output and redaction, without services."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from routeq.check import CheckResult, print_checks, safe_url


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
