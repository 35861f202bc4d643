"""The ``routeq`` entry point's exit statuses and messages, without services: what a script
branching on ``$?`` sees for each kind of failure, and that no traceback reaches the user."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc

from routeq import cli
from routeq.errors import ConfigError, InvalidQueryError
from routeq.exitcodes import CommandFailed, ExitCode, failure_for


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """``routeq ARGS`` through ``main``, as the installed script runs it."""
    monkeypatch.setattr(sys, "argv", ["routeq", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_version(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, monkeypatch, "--version")
    assert code == 0
    assert re.fullmatch(r"routeq \d+\.\d+\S*\n", out), out


def test_a_mistyped_input_path_is_a_usage_error_and_starts_nothing(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "notes").mkdir()
    code, _, err = run(capsys, monkeypatch, "summarize", "notes", "nots", "--out", "x.jsonl")
    assert code == 2 and ExitCode.USAGE.value == 2
    assert err.startswith("error: no such file or directory") and "'nots'" in err
    assert "'notes'" not in err  # the one that exists is not blamed
    assert "Traceback" not in err
    assert not (clean_env / ".routeq").exists(), "nothing may be started for a typo"
    assert not (clean_env / "x.jsonl").exists()


def test_an_unmatched_pattern_is_refused_and_a_matching_one_is_not(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "a.md").write_text("text")
    code, _, err = run(capsys, monkeypatch, "summarize", "*.txt", "--out", "x.jsonl")
    assert code == 2 and "'*.txt'" in err
    # A pattern that matches passes the input check and fails later, on --no-wait.
    code, _, err = run(capsys, monkeypatch, "summarize", "*.md", "--out", "x.jsonl", "--no-wait")
    assert code == 2 and "--no-wait would stop" in err


def test_a_format_that_contradicts_the_file_name_warns(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "notes").mkdir()
    # --no-wait is refused right after the options are read, before anything starts.
    args = ("summarize", "notes", "--out", "x.jsonl", "--format", "md", "--no-wait")
    _, _, err = run(capsys, monkeypatch, *args)
    assert "warning: writing md to x.jsonl, whose suffix says jsonl" in err
    _, _, err = run(capsys, monkeypatch, "summarize", "notes", "--out", "x.jsonl", "--no-wait")
    assert "warning" not in err
    _, _, err = run(
        capsys, monkeypatch, "summarize", "notes", "--out", "x.md", "--format", "jsonl", "--no-wait"
    )
    assert "warning: writing jsonl to x.md, whose suffix says md" in err


def test_a_malformed_config_is_a_setup_error(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "routeq.toml").write_text("[[tiers]]\nname = 'cheap'\n", encoding="utf-8")
    code, _, err = run(capsys, monkeypatch, "batch", "list")
    assert code == 4 and ExitCode.SETUP.value == 4
    assert err.startswith("error: ") and "routeq.toml" in err and "Traceback" not in err


def test_unknown_options_keep_typers_usage_status(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run(capsys, monkeypatch, "batch", "status", "--no-such-option")
    assert code == 2


# -- the mapping itself ----------------------------------------------------------------------------


def _sql_error(orig: Exception, kind: type[sqlalchemy.exc.DBAPIError]) -> BaseException:
    return kind("SELECT 1", None, orig)


def test_a_missing_table_says_to_run_db_upgrade() -> None:
    error = _sql_error(
        psycopg.errors.UndefinedTable('relation "queries" does not exist\nLINE 1: ...'),
        sqlalchemy.exc.ProgrammingError,
    )
    failure = failure_for(error)
    assert failure is not None and failure.code == ExitCode.SETUP
    assert failure.lines == [
        'error: the database is not migrated for this routeq (relation "queries" does not '
        "exist): run `routeq db upgrade`"
    ]


def test_an_unreachable_database_is_a_runtime_failure_without_its_password() -> None:
    error = _sql_error(
        psycopg.OperationalError(
            "could not connect to postgresql://routeq:s3cret-pass-word@db/routeq\n"
            "Is the server running?"
        ),
        sqlalchemy.exc.OperationalError,
    )
    failure = failure_for(error)
    assert failure is not None and failure.code == ExitCode.FAILED
    assert len(failure.lines) == 1 and "ROUTEQ_DATABASE_URL" in failure.lines[0]
    assert "s3cret-pass-word" not in failure.lines[0]


def test_command_failed_lists_its_reasons_and_counts_the_rest() -> None:
    reasons = [f"doc{index}.md: all tiers failed" for index in range(14)]
    failure = failure_for(CommandFailed("14 of 20 documents failed:", reasons))
    assert failure is not None and failure.code == ExitCode.FAILED
    assert failure.lines[0] == "error: 14 of 20 documents failed:"
    assert failure.lines[1:11] == [f"  {reason}" for reason in reasons[:10]]
    assert failure.lines[11] == "  … and 4 more"


def test_a_reason_stays_on_one_line() -> None:
    failure = failure_for(CommandFailed("query failed:", ["first line\nsecond   line"]))
    assert failure is not None and failure.lines[1] == "  first line second line"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidQueryError("text is empty"), ExitCode.USAGE),
        (ConfigError("routeq.toml: invalid"), ExitCode.SETUP),
        (TimeoutError("still running"), ExitCode.TIMEOUT),
    ],
)
def test_each_kind_of_error_has_its_status(error: BaseException, code: ExitCode) -> None:
    failure = failure_for(error)
    assert failure is not None and failure.code == code


def test_a_bug_keeps_its_traceback() -> None:
    assert failure_for(ZeroDivisionError("division by zero")) is None


def test_exit_codes_tell_usage_from_runtime_failures() -> None:
    from routeq.errors import (
        ConfigError,
        InvalidQueryError,
        RouteqError,
        UnknownQueryError,
        UsageError,
    )
    from routeq.exitcodes import ExitCode, failure_for
    from routeq.ledger.batches import BatchSpecMismatchError, UnknownBatchError

    def code(error: BaseException) -> ExitCode | None:
        failure = failure_for(error)
        return None if failure is None else failure.code

    assert code(UsageError("--meta expects KEY=VALUE")) is ExitCode.USAGE
    assert code(InvalidQueryError("text is empty")) is ExitCode.USAGE
    assert code(UnknownQueryError("no query")) is ExitCode.USAGE
    assert code(UnknownBatchError("no batch")) is ExitCode.USAGE
    assert code(BatchSpecMismatchError("other spec")) is ExitCode.USAGE
    assert code(ConfigError("malformed routeq.toml")) is ExitCode.SETUP
    # the embedded servers failing to start, a migration wait timing out: the work failed
    assert code(RouteqError("embedded Redis did not start")) is ExitCode.FAILED
    assert code(ValueError("a bug")) is None  # keeps its traceback


def test_db_roles_prints_the_grants_and_refuses_a_bad_prefix(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, monkeypatch, "db", "roles", "--prefix", "acme_")
    assert code == 0
    assert "CREATE ROLE acme_reporting NOLOGIN" in out
    assert "GRANT SELECT ON ALL TABLES IN SCHEMA public, metrics TO acme_reporting;" in out
    assert "CREATE POLICY acme_own_queries ON queries TO acme_gateway" in out
    code, _, err = run(capsys, monkeypatch, "db", "roles", "--prefix", "Robert'); DROP")
    assert code == 2 and "lower-case letters, digits and _ only" in err
