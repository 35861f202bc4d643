"""``routeq summarize`` refuses bad options before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from routeq.cli import app
from routeq.errors import RouteqError

runner = CliRunner()


def invoke(*args: str) -> BaseException | None:
    result = runner.invoke(app, list(args))
    return result.exception


def test_no_wait_on_the_embedded_default_is_refused_before_anything_starts(
    clean_env: Path,
) -> None:
    (clean_env / "docs").mkdir()
    error = invoke("summarize", "docs", "--out", "out.jsonl", "--no-wait")
    assert isinstance(error, RouteqError)
    assert "--no-wait would stop this command's own workers" in str(error)
    assert not (clean_env / ".routeq").exists()  # nothing was started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-words", "200", "--max-words", "100"], "must not exceed max_words"),
        (["--language", "xx"], "unsupported language 'xx'"),
        (["--style", "table"], "invalid summary options"),
        (["--format", "pdf"], "--format must be jsonl or md"),
    ],
)
def test_bad_summary_options_say_what_is_wrong(
    clean_env: Path, args: list[str], message: str
) -> None:
    error = invoke("summarize", "docs", "--out", "out.jsonl", *args)
    assert isinstance(error, RouteqError)
    assert message in str(error)
    assert not (clean_env / ".routeq").exists()
