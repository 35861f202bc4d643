"""The operations commands' behaviour that needs no services: refusals and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from routeq.cli import app
from routeq.errors import RouteqError

runner = CliRunner()


def test_check_exits_1_and_says_what_is_down(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTEQ_DATABASE_URL", "postgresql://postgres:pw123456@127.0.0.1:9/x")
    monkeypatch.setenv("ROUTEQ_BROKER_URL", "redis://127.0.0.1:9/0")
    result = runner.invoke(app, ["check", "--timeout", "1"])
    assert result.exit_code == 1
    assert "cannot connect to" in result.output and "checks failed" in result.output
    assert "pw123456" not in result.output


@pytest.mark.parametrize("credentials", [None, "", "admin"])
def test_flower_refuses_to_run_without_basic_auth(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, credentials: str | None
) -> None:
    if credentials is None:
        monkeypatch.delenv("ROUTEQ_FLOWER_BASIC_AUTH", raising=False)
    else:
        monkeypatch.setenv("ROUTEQ_FLOWER_BASIC_AUTH", credentials)
    result = runner.invoke(app, ["flower"])
    assert isinstance(result.exception, RouteqError)
    assert "ROUTEQ_FLOWER_BASIC_AUTH=user:password" in str(result.exception)
    assert not (clean_env / ".routeq").exists()  # refused before starting anything


def test_flower_refuses_the_placeholder_password_from_the_env_example(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTEQ_FLOWER_BASIC_AUTH", "admin:change-me-flower")
    result = runner.invoke(app, ["flower"])
    assert isinstance(result.exception, RouteqError)
    assert "placeholder" in str(result.exception)
