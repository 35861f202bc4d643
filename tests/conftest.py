"""Service fixtures shared by all tests.

Integration tests need a real Postgres and a real Redis. Locally they skip with a clear message
when a service is absent; under CI (``CI`` set) they fail instead, so a missing service can never
turn into a green run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from routeq.config import Settings, load_settings
from routeq.ledger import Ledger, make_engine
from routeq.ledger.migrate import upgrade

ADMIN_URL = os.environ.get(
    "ROUTEQ_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ROUTEQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def service_unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable ({error}); integration tests need it"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this fails instead of skipping)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's routeq.toml or ROUTEQ_* variables by accident."""
    for name in list(os.environ):
        if name.startswith("ROUTEQ_") and not name.startswith("ROUTEQ_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so no routeq.toml is picked up (ROUTEQ_* variables are already
    removed by ``_isolated_config``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def settings(clean_env: Path) -> Settings:
    """The default settings: the simulated three-tier ladder."""
    return load_settings()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"routeq_test_{os.getpid()}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        service_unavailable("Postgres", error)
    yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


def emptied_ledger(database_url: str) -> Ledger:
    """The ledger of ``database_url`` with every table emptied (feedback goes with queries)."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "TRUNCATE batches, batch_documents, queries, hops, provider_requests, "
                "reconciler_stats, budget_use RESTART IDENTITY CASCADE"
            )
        )
    return Ledger(engine)


@pytest.fixture
def ledger(migrated_url: str) -> Iterator[Ledger]:
    """The ledger on an emptied schema."""
    emptied = emptied_ledger(migrated_url)
    yield emptied
    emptied.engine.dispose()


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A Redis database emptied before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as error:
        service_unavailable("Redis", error)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    """A brand-new empty database (no routeq schema), dropped afterwards."""
    name = f"routeq_scratch_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
