"""``routeq check`` against real services: every failure is reported with its fix, one broken
service never hides the others, and no password or API key is ever shown."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from rich.console import Console

import routeq.check
from routeq.check import CheckResult, print_checks, run_checks
from routeq.config import (
    JudgeConfig,
    ModelEndpoint,
    Settings,
    TierConfig,
    default_judge,
    default_tiers,
)
from routeq.ledger.migrate import alembic_config, current_head, upgrade
from routeq.sim import SimServer, default_sim_config

try:
    from conftest import ADMIN_URL
except ImportError:  # pragma: no cover - conftest is always importable under pytest
    ADMIN_URL = os.environ.get(
        "ROUTEQ_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )

pytestmark = pytest.mark.integration

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there, so connections are refused
MISSING_KEY_ENV = "ROUTEQ_TEST_MISSING_KEY_XYZ"
SECRET_KEY = "sk-routeq-test-SECRET-0123456789"
DB_PASSWORD = "db-pass-Zq7-secret"
REDIS_PASSWORD = "redis-pass-Kx9-secret"
TIMEOUT_S = 3.0
HEALTHY_NAMES = [
    "config",
    "database",
    "database schema",
    "broker",
    "tier cheap",
    "tier mid",
    "tier frontier",
    "judge",
]


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(default_sim_config()) as server:
        yield server


def make_settings(
    sim: SimServer,
    *,
    database_url: str | None,
    broker_url: str | None,
    tiers: list[TierConfig] | None = None,
    judge_model: ModelEndpoint | None = None,
) -> Settings:
    judge = default_judge(sim.url)
    if judge_model is not None:
        judge = judge.model_copy(update={"model": judge_model})
    return Settings(
        tiers=tiers if tiers is not None else default_tiers(sim.url),
        judge=judge,
        database_url=database_url,
        broker_url=broker_url,
    )


def with_password(url: str, password: str) -> str:
    """``postgresql+psycopg://postgres@host/db`` with a password (trust auth ignores it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


def printed(results: list[CheckResult]) -> str:
    """What ``routeq check`` prints, wide enough that no value is split across lines."""
    buffer = StringIO()
    print_checks(Console(file=buffer, width=400, color_system=None), results)
    return buffer.getvalue()


def assert_never_shown(secret: str, results: list[CheckResult]) -> None:
    for result in results:
        assert secret not in result.detail, result
    assert secret not in printed(results)


def tier(sim_url: str, name: str, **changes: Any) -> TierConfig:
    [found] = [t for t in default_tiers(sim_url) if t.name == name]
    return found.model_copy(update=changes)


# -- a healthy deployment --------------------------------------------------------------------------


def test_all_checks_pass_on_a_healthy_deployment(
    sim: SimServer, migrated_url: str, broker_url: str
) -> None:
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )

    assert [result.name for result in results] == HEALTHY_NAMES
    assert all(result.ok for result in results), results
    checks = by_name(results)
    assert "loaded from defaults" in checks["config"].detail
    assert "cheap (sim-small)" in checks["config"].detail
    assert "PostgreSQL" in checks["database"].detail
    assert f"latest revision ({current_head()})" in checks["database schema"].detail
    assert "Redis" in checks["broker"].detail
    assert "answered in" in checks["tier cheap"].detail
    assert "(model sim-small" in checks["tier cheap"].detail
    assert "(model sim-judge" in checks["judge"].detail
    assert "all 8 checks passed" in printed(results)


def test_config_check_names_the_file_it_loaded(
    sim: SimServer, migrated_url: str, broker_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "routeq.toml"
    settings = make_settings(sim, database_url=migrated_url, broker_url=broker_url)
    settings = settings.model_copy(update={"config_file": config})

    [result] = [r for r in run_checks(settings, timeout_s=TIMEOUT_S) if r.name == "config"]

    assert result.ok and f"loaded from {config}" in result.detail


# -- database --------------------------------------------------------------------------------------


def test_database_down_is_reported_and_the_other_checks_still_run(
    sim: SimServer, broker_url: str
) -> None:
    url = f"postgresql://postgres:{DB_PASSWORD}@{CLOSED}/x"
    results = run_checks(
        make_settings(sim, database_url=url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )
    checks = by_name(results)

    assert [result.name for result in results] == HEALTHY_NAMES
    database = checks["database"]
    assert not database.ok
    assert "cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:9/x" in database.detail
    assert "Connection refused" in database.detail
    assert "ROUTEQ_DATABASE_URL" in database.detail and "Postgres is up" in database.detail
    assert "\n" not in database.detail
    schema = checks["database schema"]
    assert not schema.ok and "not checked" in schema.detail and "not reachable" in schema.detail
    assert checks["broker"].ok
    assert all(checks[name].ok for name in ("config", "tier cheap", "tier frontier", "judge"))
    assert "2 of 8 checks failed" in printed(results)
    assert_never_shown(DB_PASSWORD, results)


def test_a_password_in_a_working_database_url_is_never_shown(
    sim: SimServer, migrated_url: str, broker_url: str
) -> None:
    url = with_password(migrated_url, DB_PASSWORD)
    results = run_checks(
        make_settings(sim, database_url=url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )

    database = by_name(results)["database"]
    assert database.ok and "postgres:***@" in database.detail
    assert by_name(results)["database schema"].ok
    assert_never_shown(DB_PASSWORD, results)


def test_an_unmigrated_database_asks_for_db_upgrade(
    sim: SimServer, scratch_url: str, broker_url: str
) -> None:
    results = run_checks(
        make_settings(sim, database_url=scratch_url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )
    checks = by_name(results)

    assert checks["database"].ok
    schema = checks["database schema"]
    assert not schema.ok
    assert "run `routeq db upgrade`" in schema.detail
    assert "1 of 8 checks failed" in printed(results)


def test_an_older_revision_asks_for_db_upgrade(
    sim: SimServer, scratch_url: str, broker_url: str
) -> None:
    head = current_head()
    assert head is not None
    previous = ScriptDirectory.from_config(alembic_config(scratch_url)).get_revision(head)
    if previous is None or previous.down_revision is None:
        pytest.skip("only one migration exists")
    older = str(previous.down_revision)
    upgrade(scratch_url, older)

    results = run_checks(
        make_settings(sim, database_url=scratch_url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )

    schema = by_name(results)["database schema"]
    assert not schema.ok
    assert f"revision {older}, head is {head}" in schema.detail
    assert "run `routeq db upgrade`" in schema.detail


def test_a_revision_from_a_newer_routeq_says_to_upgrade_routeq(
    sim: SimServer, scratch_url: str, broker_url: str
) -> None:
    engine = sa.create_engine(scratch_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('9999_future')"))
    engine.dispose()

    results = run_checks(
        make_settings(sim, database_url=scratch_url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )

    schema = by_name(results)["database schema"]
    assert not schema.ok
    assert "9999_future" in schema.detail and "newer routeq" in schema.detail


def test_unset_urls_mean_the_embedded_default_which_passes_and_starts_nothing(
    sim: SimServer, clean_env: Path
) -> None:
    results = run_checks(
        make_settings(sim, database_url=None, broker_url=None), timeout_s=TIMEOUT_S
    )
    checks = by_name(results)

    assert all(result.ok for result in results), results
    assert checks["database"].detail.startswith("embedded Postgres (")
    assert "not running, the commands that need it start it" in checks["database"].detail
    assert "ROUTEQ_DATABASE_URL" in checks["database"].detail
    assert "migrated when a command starts it" in checks["database schema"].detail
    assert "ROUTEQ_BROKER_URL" in checks["broker"].detail
    assert "answered in" in checks["tier cheap"].detail  # the model endpoints are still checked
    assert not (clean_env / ".routeq").exists(), "routeq check must not start embedded servers"


def test_a_running_embedded_default_is_checked_like_a_configured_one(
    sim: SimServer, clean_env: Path
) -> None:
    """Started (and migrated) by an earlier command, the embedded servers are connected to."""
    from routeq.embedded import resolve_endpoints, stop

    state = Path(tempfile.mkdtemp(prefix="routeq-check-"))  # see test_cli_batches: not tmp_path
    settings = make_settings(sim, database_url=None, broker_url=None).model_copy(
        update={"state_dir": state / ".routeq"}
    )
    try:
        resolve_endpoints(settings)
        checks = by_name(run_checks(settings, timeout_s=TIMEOUT_S))
    finally:
        stop(settings)
        shutil.rmtree(state, ignore_errors=True)

    assert all(result.ok for result in checks.values()), checks
    assert checks["database"].detail.startswith("embedded Postgres: connected to ")
    assert f"latest revision ({current_head()})" in checks["database schema"].detail
    assert checks["broker"].detail.startswith("embedded Redis ")
    assert "answered at redis+socket://" in checks["broker"].detail


# -- broker ----------------------------------------------------------------------------------------


def test_unreachable_broker_is_reported_without_its_password(
    sim: SimServer, migrated_url: str
) -> None:
    url = f"redis://:{REDIS_PASSWORD}@{CLOSED}/0"
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=url), timeout_s=TIMEOUT_S
    )
    checks = by_name(results)

    broker = checks["broker"]
    assert not broker.ok
    assert "cannot reach Redis at redis://:***@127.0.0.1:9/0" in broker.detail
    assert "ROUTEQ_BROKER_URL" in broker.detail
    assert checks["database"].ok and checks["database schema"].ok and checks["judge"].ok
    assert "1 of 8 checks failed" in printed(results)
    assert_never_shown(REDIS_PASSWORD, results)


# -- model endpoints -------------------------------------------------------------------------------


def test_unreachable_endpoint_fails_only_its_tier(
    sim: SimServer, migrated_url: str, broker_url: str
) -> None:
    tiers = default_tiers(sim.url)
    tiers[1] = tier(sim.url, "mid", base_url=f"http://{CLOSED}/v1")
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=broker_url, tiers=tiers),
        timeout_s=TIMEOUT_S,
    )
    checks = by_name(results)

    mid = checks["tier mid"]
    assert not mid.ok
    assert mid.detail.startswith("cannot connect to http://127.0.0.1:9/v1: ")
    assert "check base_url and that the server is up" in mid.detail
    assert checks["tier cheap"].ok and checks["tier frontier"].ok and checks["judge"].ok
    assert "1 of 8 checks failed" in printed(results)


def test_a_slow_endpoint_is_cut_off_at_the_check_timeout(
    migrated_url: str, broker_url: str
) -> None:
    """A server that accepts the connection but never answers costs timeout_s, not the tier's
    own (longer) timeout."""
    with silent_server() as silent:
        tiers = [tier(silent.url, "cheap", timeout_s=60.0)]
        settings = Settings(
            tiers=tiers,
            judge=JudgeConfig(enabled=False),
            database_url=migrated_url,
            broker_url=broker_url,
        )
        started = time.monotonic()
        results = run_checks(settings, timeout_s=0.5)
        elapsed = time.monotonic() - started

    assert [result.name for result in results] == [*HEALTHY_NAMES[:4], "tier cheap"]
    cheap = by_name(results)["tier cheap"]
    assert not cheap.ok
    assert cheap.detail.startswith(f"no answer from {silent.url}: timed out after 0.5s")
    assert elapsed < 5, f"the probe waited {elapsed:.1f}s"


def test_an_unknown_model_points_at_base_url_and_model_name(
    sim: SimServer, migrated_url: str, broker_url: str
) -> None:
    tiers = default_tiers(sim.url)
    tiers[2] = tier(sim.url, "frontier", model="sim-missing")
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=broker_url, tiers=tiers),
        timeout_s=TIMEOUT_S,
    )

    frontier = by_name(results)["tier frontier"]
    assert not frontier.ok
    assert "HTTP 404" in frontier.detail and "sim-missing" in frontier.detail
    assert "check base_url" in frontier.detail


def test_missing_api_key_names_the_variable_and_sends_no_request(
    sim: SimServer, migrated_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MISSING_KEY_ENV, raising=False)
    tiers = default_tiers(sim.url)
    # Unreachable too: a request, had one been sent, would be reported as a connect error.
    tiers[0] = tier(sim.url, "cheap", api_key_env=MISSING_KEY_ENV, base_url=f"http://{CLOSED}/v1")
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=broker_url, tiers=tiers),
        timeout_s=TIMEOUT_S,
    )

    cheap = by_name(results)["tier cheap"]
    assert not cheap.ok
    assert cheap.detail.startswith(
        f"environment variable {MISSING_KEY_ENV} is not set (tier cheap needs it)"
    )
    assert "cannot connect" not in cheap.detail
    assert "1 of 8 checks failed" in printed(results)


def test_an_empty_api_key_counts_as_missing_for_the_judge_too(
    sim: SimServer, migrated_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MISSING_KEY_ENV, "")
    judge_model = default_judge(sim.url).model
    assert judge_model is not None
    judge_model = judge_model.model_copy(update={"api_key_env": MISSING_KEY_ENV})
    results = run_checks(
        make_settings(
            sim, database_url=migrated_url, broker_url=broker_url, judge_model=judge_model
        ),
        timeout_s=TIMEOUT_S,
    )

    judge = by_name(results)["judge"]
    assert not judge.ok
    assert f"environment variable {MISSING_KEY_ENV} is not set (judge needs it)" in judge.detail


def test_a_set_api_key_is_used_but_never_shown(
    sim: SimServer, migrated_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MISSING_KEY_ENV, SECRET_KEY)
    tiers = default_tiers(sim.url)
    tiers[0] = tier(sim.url, "cheap", api_key_env=MISSING_KEY_ENV)
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=broker_url, tiers=tiers),
        timeout_s=TIMEOUT_S,
    )

    cheap = by_name(results)["tier cheap"]
    assert cheap.ok and f"key from {MISSING_KEY_ENV}" in cheap.detail
    assert_never_shown(SECRET_KEY, results)


def test_a_provider_that_quotes_the_key_back_does_not_leak_it(
    migrated_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some providers echo the rejected key in their 401 message; the check must not print it."""
    monkeypatch.setenv(MISSING_KEY_ENV, SECRET_KEY)
    with rejecting_server() as rejecting:
        tiers = [tier(rejecting.url, "cheap", api_key_env=MISSING_KEY_ENV)]
        settings = Settings(
            tiers=tiers,
            judge=JudgeConfig(enabled=False),
            database_url=migrated_url,
            broker_url=broker_url,
        )
        results = run_checks(settings, timeout_s=TIMEOUT_S)

    cheap = by_name(results)["tier cheap"]
    assert not cheap.ok
    assert "HTTP 401" in cheap.detail and "Incorrect API key provided: [REDACTED]" in cheap.detail
    assert f"check the API key in {MISSING_KEY_ENV}" in cheap.detail
    assert [result.name for result in results] == [*HEALTHY_NAMES[:4], "tier cheap"]
    assert_never_shown(SECRET_KEY, results)


# -- isolation and output --------------------------------------------------------------------------


def test_a_crashing_check_does_not_stop_the_others(
    sim: SimServer, migrated_url: str, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(url: str | None, timeout_s: float) -> CheckResult:
        raise RuntimeError("boom [bold]not markup[/bold]")

    monkeypatch.setattr(routeq.check, "_check_broker", explode)
    results = run_checks(
        make_settings(sim, database_url=migrated_url, broker_url=broker_url), timeout_s=TIMEOUT_S
    )
    checks = by_name(results)

    assert [result.name for result in results] == HEALTHY_NAMES
    assert not checks["broker"].ok
    assert "RuntimeError: boom" in checks["broker"].detail
    assert all(checks[name].ok for name in HEALTHY_NAMES if name != "broker")
    output = printed(results)
    assert "boom [bold]not markup[/bold]" in output  # shown as is, not as markup
    assert "1 of 8 checks failed" in output


# -- tiny HTTP servers for failures the simulator does not produce ---------------------------------


class _TestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> _TestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _RejectingHandler(BaseHTTPRequestHandler):
    """Answers 401 quoting the presented key, as some providers do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _SilentHandler(BaseHTTPRequestHandler):
    """Reads the request and never answers (until the server shuts down)."""

    stop = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.stop.wait(5)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def rejecting_server() -> _TestServer:
    return _TestServer(_RejectingHandler)


def silent_server() -> _TestServer:
    return _TestServer(_SilentHandler)
