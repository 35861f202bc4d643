"""The ``routeq`` command line as a user runs it: a subprocess configured by file and env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from stack import running_stack, sim_config

from routeq import Client
from routeq.sim import SimModel

pytestmark = pytest.mark.integration

# Every model of these stacks is down: a query at the top tier waits for the provider's breaker
# (protection.wait_deadline_s) before it fails; these tests are about the failure, not the wait.
FAIL_AT_ONCE = {"protection": {"wait_deadline_s": 0}}

# Wide, colourless output, so messages are matched as written and never wrapped or styled.
_PLAIN = {"COLUMNS": "500", "NO_COLOR": "1", "TERM": "dumb"}
_STYLING = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE")

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def plain(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in _STYLING} | _PLAIN


def routeq(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "routeq", *args],
        env=plain(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_user_error(
    result: subprocess.CompletedProcess[str], *fragments: str, status: int = 2
) -> None:
    """Exit status 2 (or ``status``), the message on stderr, and no traceback anywhere."""
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == status, output
    assert "Traceback" not in result.stderr + result.stdout, output
    assert result.stderr.startswith("error: "), output
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{output}"


@pytest.fixture
def env(migrated_url: str, broker_url: str) -> dict[str, str]:
    """Real Postgres and Redis, default configuration (no config file)."""
    return dict(os.environ, ROUTEQ_DATABASE_URL=migrated_url, ROUTEQ_BROKER_URL=broker_url)


# -- with a worker ---------------------------------------------------------------------------------


def test_submit_wait_and_status(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    with running_stack(tmp_path, migrated_url, broker_url, sim_config()) as (stack, _):
        stack.start_worker("--concurrency", "2")

        waited = routeq(
            "submit", "--wait", "--timeout", "30", "hello there", env=stack.env, cwd=tmp_path
        )
        assert waited.returncode == 0, waited.stderr
        assert re.search(
            r"query [0-9a-f-]{36}: done\s+tier path: (cheap|mid|frontier)", waited.stdout
        ), waited.stdout
        assert "answer (" in waited.stdout

        submitted = routeq("submit", "What is the capital of France?", env=stack.env, cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        query_id = submitted.stdout.strip()
        assert UUID_RE.match(query_id), submitted.stdout

        with Client(stack.settings) as client:
            finished = client.handle(query_id).wait(timeout=30)

        shown = routeq("status", query_id, "--json", env=stack.env, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["query_id"] == query_id
        assert data["status"] == finished.status == "done"
        assert data["answer"] == finished.answer
        assert data["tier_path"] == finished.tier_path
        assert [hop["seq"] for hop in data["hops"]] == list(range(1, len(data["hops"]) + 1))
        assert data["hops"][0]["kind"] == "route"
        # Money is a JSON number, not a string such as "0E-10".
        assert data["total_cost"] == pytest.approx(float(finished.total_cost))
        assert all(isinstance(hop["cost"], int | float) for hop in data["hops"])


def test_a_failed_query_exits_1_with_its_reason(
    tmp_path: Path, migrated_url: str, broker_url: str, ledger: object
) -> None:
    broken = {
        name: SimModel(name, quality=0.9, fault_500=1.0)
        for name in ("sim-small", "sim-medium", "sim-large")
    }
    with running_stack(
        tmp_path, migrated_url, broker_url, sim_config(**broken), **FAIL_AT_ONCE
    ) as (
        stack,
        _,
    ):
        stack.start_worker("--concurrency", "2")

        waited = routeq(
            "submit", "--wait", "--timeout", "60", "hello there", env=stack.env, cwd=tmp_path
        )
        output = f"stdout:\n{waited.stdout}\nstderr:\n{waited.stderr}"
        assert waited.returncode == 1, output
        assert "Traceback" not in waited.stderr, output
        match = re.search(r"^error: query ([0-9a-f-]{36}) failed:\n  \S", waited.stderr, re.M)
        assert match, output
        assert re.search(r"query [0-9a-f-]{36}: failed", waited.stdout), output

        shown = routeq("status", match.group(1), env=stack.env, cwd=tmp_path)
        assert shown.returncode == 1 and "failed:" in shown.stderr, shown.stderr
        as_json = routeq("status", match.group(1), "--json", env=stack.env, cwd=tmp_path)
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["status"] == "failed"


# -- error paths -----------------------------------------------------------------------------------

BAD_RULE_CONFIG = """\
[[tiers]]
name = "cheap"
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "small"
input_price_per_mtok = "0.1"
output_price_per_mtok = "0.4"
context_window = 16000

[[routing.rules]]
name = "code-goes-big"
tier = "huge"
keywords = ["code"]
"""


def test_malformed_config_names_the_file_and_the_rule(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "bad-routeq.toml"
    config.write_text(BAD_RULE_CONFIG, encoding="utf-8")

    result = routeq("submit", "hi", env=env | {"ROUTEQ_CONFIG": str(config)}, cwd=tmp_path)

    assert_user_error(
        result,
        str(config),
        "routing.rules[0]",
        "'code-goes-big'",
        "unknown tier 'huge'",
        "cheap",
        status=4,  # a setup error, not a bad argument
    )


def test_worker_with_an_unknown_queue_lists_the_known_ones(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result = routeq("worker", "--queue", "nope", env=env, cwd=tmp_path)

    assert_user_error(
        result,
        "unknown queue(s) nope",
        "route, judge, maintenance, tier.cheap, tier.mid, tier.frontier",
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["submit", ""], ["text is empty"]),
        (["submit", "   "], ["text is empty"]),
        (["submit", "--meta", "novalue", "hi"], ["--meta expects KEY=VALUE", "'novalue'"]),
        (["submit", "--meta", "=value", "hi"], ["--meta expects KEY=VALUE"]),
        (["status", "not-a-uuid"], ["'not-a-uuid' is not a query id"]),
    ],
    ids=["empty", "blank", "meta-novalue", "meta-nokey", "status-malformed"],
)
def test_bad_arguments_exit_2_with_a_message(
    tmp_path: Path, env: dict[str, str], ledger: object, args: list[str], fragments: list[str]
) -> None:
    assert_user_error(routeq(*args, env=env, cwd=tmp_path), *fragments)


@pytest.mark.parametrize("pair", ["[/x]", "[bold]"])
def test_error_messages_are_printed_verbatim(
    tmp_path: Path, env: dict[str, str], pair: str
) -> None:
    result = routeq("submit", "--meta", pair, "hi", env=env, cwd=tmp_path)
    assert_user_error(result, f"--meta expects KEY=VALUE, got {pair!r}")


def test_status_of_an_unknown_query(tmp_path: Path, env: dict[str, str], ledger: object) -> None:
    missing = str(uuid.uuid4())
    assert_user_error(
        routeq("status", missing, env=env, cwd=tmp_path), f"no query with id {missing}"
    )


# -- database --------------------------------------------------------------------------------------


def test_db_upgrade_reports_the_schema_up_to_date(tmp_path: Path, env: dict[str, str]) -> None:
    result = routeq("db", "upgrade", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "database schema is up to date" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status", "00000000-0000-0000-0000-000000000001"],
        ["submit", "hello"],
        ["batch", "list"],
        ["batch", "status", "some-batch"],
        ["batch", "results", "some-batch", "--out", "out.jsonl"],
        ["reconcile", "--dry-run"],
        ["metrics", "--port", "0"],  # would otherwise serve, and fail at every scrape
    ],
    ids=[
        "status",
        "submit",
        "batch-list",
        "batch-status",
        "batch-results",
        "reconcile",
        "metrics",
    ],
)
def test_an_unmigrated_database_asks_for_db_upgrade_in_one_line(
    tmp_path: Path, scratch_url: str, broker_url: str, args: list[str]
) -> None:
    env = dict(os.environ, ROUTEQ_DATABASE_URL=scratch_url, ROUTEQ_BROKER_URL=broker_url)

    result = routeq(*args, env=env, cwd=tmp_path)

    assert_user_error(result, "run `routeq db upgrade`", status=4)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_db_upgrade_with_only_a_database_starts_no_embedded_redis(
    tmp_path: Path, scratch_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEQ_BROKER")}
    env["ROUTEQ_DATABASE_URL"] = scratch_url

    result = routeq("db", "upgrade", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "database schema is up to date" in result.stdout
    assert not (tmp_path / ".routeq").exists(), "db upgrade started an embedded server"
    status = routeq("batch", "list", env=env, cwd=tmp_path)  # migrated: usable at once
    assert status.returncode == 0 and "no batches yet" in status.stdout, status.stderr
