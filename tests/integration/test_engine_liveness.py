"""Workers ping a pooled connection only after it sat unused (a model call's wait): a connection
that Postgres dropped meanwhile is replaced before the step's statement, not failed by it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from routeq.ledger import make_engine

pytestmark = pytest.mark.integration


def _drop_backend_of(engine: sa.Engine, admin: sa.Engine) -> None:
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.3)


def test_a_connection_dropped_while_idle_is_replaced_before_use(database_url: str) -> None:
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    # Given a worker's engine, and a pool connection the server dropped while it was idle
    pinging = make_engine(database_url, pool_size=1, pre_ping=False, ping_after_idle_s=0.1)
    _drop_backend_of(pinging, admin)
    # When a step uses it, the ping finds it dead and a fresh connection serves the statement
    with pinging.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    # whereas an engine that never pings fails that statement (what the ping is for)
    silent = make_engine(database_url, pool_size=1, pre_ping=False)
    _drop_backend_of(silent, admin)
    with pytest.raises(OperationalError), silent.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    for engine in (pinging, silent, admin):
        engine.dispose()
