"""Least privilege (docs/roles.md): the worker role runs the pipeline, the reporting role
reads and cannot write (and ``routeq check --read-only`` says so), and the gateway role
submits queries and sees only its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from test_inprocess_pipeline import pipeline

from routeq.ledger import Ledger, make_engine
from routeq.ledger.roles import apply_roles, role_names, write_privileges
from routeq.records import NewQuery, QueryStatus
from routeq.traffic_report import Period, read_report

pytestmark = pytest.mark.integration

PREFIX = f"rqtest{os.getpid()}_"


def as_user(url: str, user: str) -> str:
    """``url`` logging in as ``user`` (trust authentication), with server settings."""
    return make_url(url).set(username=user).render_as_string(hide_password=False)


@pytest.fixture
def roles(migrated_url: str, ledger: Ledger) -> Iterator[dict[str, str]]:
    """The three roles, and a login user in each; dropped afterwards (roles are cluster-wide)."""
    names = role_names(PREFIX)
    apply_roles(ledger.engine, PREFIX)
    apply_roles(ledger.engine, PREFIX)  # again, as after a migration: harmless
    users = {role: f"{name}login" for role, name in names.items()}
    with ledger.engine.begin() as conn:
        for role, user in users.items():
            conn.execute(sa.text(f"CREATE ROLE {user} LOGIN IN ROLE {names[role]}"))
    try:
        yield users
    finally:
        with ledger.engine.begin() as conn:
            for statement in (
                "ALTER TABLE queries DISABLE ROW LEVEL SECURITY",
                "ALTER TABLE hops DISABLE ROW LEVEL SECURITY",
            ):
                conn.execute(sa.text(statement))
            for name in [*users.values(), *names.values()]:
                conn.execute(sa.text(f"DROP OWNED BY {name}"))
                conn.execute(sa.text(f"DROP ROLE {name}"))


def test_the_worker_role_runs_the_pipeline(migrated_url: str, roles: dict[str, str]) -> None:
    engine = make_engine(as_user(migrated_url, roles["worker"]))
    worker = Ledger(engine)
    try:
        with pipeline(worker) as (runner, _):
            [query_id] = runner.submit(["What does a ledger record?"])
            assert runner.run().errors == []
            assert worker.view(query_id).status is QueryStatus.DONE
        # and it cannot change the schema
        denied = pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner")
        with denied, engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE provider_requests"))
        assert "public.queries" in write_privileges(engine)
    finally:
        engine.dispose()


def test_the_reporting_role_reads_and_cannot_write(
    tmp_path: Path, migrated_url: str, roles: dict[str, str], ledger: Ledger
) -> None:
    with pipeline(ledger) as (runner, settings):
        runner.submit(["What does a ledger record?"])
        runner.run()
    url = as_user(migrated_url, roles["reporting"])
    engine = make_engine(url)
    try:
        report = read_report(engine, "tier", Period(), settings.top_tier)
        assert report.total.queries == 1
        assert write_privileges(engine) == []
        for statement in (
            "INSERT INTO queries (id, text, input_tokens) VALUES (gen_random_uuid(), 'x', 1)",
            "UPDATE hops SET cost = 0",
            "DELETE FROM provider_requests",
        ):
            denied = pytest.raises(sa.exc.ProgrammingError, match="permission denied")
            with denied, engine.begin() as conn:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    # The deployment check says so, and fails for a role that can write
    checked = {}
    for role in ("reporting", "worker"):
        env = {
            **os.environ,
            "ROUTEQ_DATABASE_URL": as_user(migrated_url, roles[role]),
            "ROUTEQ_BROKER_URL": "redis://127.0.0.1:6379/14",
        }
        checked[role] = subprocess.run(
            [sys.executable, "-m", "routeq", "check", "--read-only", "--timeout", "2"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    assert "the role can read the ledger and write none of it" in checked["reporting"].stdout
    assert checked["worker"].returncode == 1
    assert "this role can write" in checked["worker"].stdout


def test_the_gateway_role_submits_and_sees_only_its_own_queries(
    migrated_url: str, roles: dict[str, str], ledger: Ledger
) -> None:
    [other] = ledger.submit([NewQuery("someone else's", 2, api_key_id="key-b")])

    def gateway(key: str) -> sa.Engine:
        return sa.create_engine(
            as_user(migrated_url, roles["gateway"]),
            connect_args={"options": f"-c routeq.api_key_id={key}"},
        )

    mine = gateway("key-a")
    try:
        [submitted] = Ledger(mine).submit([NewQuery("my question", 2, api_key_id="key-a")])
        with mine.connect() as conn:
            visible = set(conn.execute(sa.text("SELECT id FROM queries")).scalars())
            hops = conn.execute(sa.text("SELECT count(*) FROM hops")).scalar_one()
        assert visible == {submitted.query_id} and other.query_id not in visible
        assert hops == 1  # its query's route hop, not the other one's
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            Ledger(mine).submit([NewQuery("posing as another key", 2, api_key_id="key-b")])
        denied = pytest.raises(sa.exc.ProgrammingError, match="permission denied")
        with denied, mine.begin() as conn:
            conn.execute(sa.text("UPDATE queries SET total_cost = :c"), {"c": Decimal(1)})
    finally:
        mine.dispose()
