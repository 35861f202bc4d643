"""The ledger for a command that needs the database and nothing else.

``routeq batch status``, ``batch list``, ``batch results``, ``status`` and ``db upgrade`` only
read or migrate Postgres. They must not start an embedded Redis (or a Celery app) they never
use, and whatever they start they stop on the way out, so a status check leaves the machine as
it found it. A configured database is checked for routeq's schema first, so an unmigrated one
is reported in one line naming the fix instead of failing on its first query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from routeq.check import safe_url, schema_problem
from routeq.config import Settings
from routeq.exitcodes import SchemaNotReadyError

if TYPE_CHECKING:
    from routeq.client import Client

_NO_BROKER = "redis://routeq-database-only.invalid/0"


def require_schema(database_url: str) -> None:
    """Raise SchemaNotReadyError (exit 4) unless the database is at this routeq's head."""
    problem = schema_problem(database_url)
    if problem is not None:
        raise SchemaNotReadyError(f"database {safe_url(database_url)}: {problem}")


@contextmanager
def database_url(settings: Settings, *, check_schema: bool = True) -> Iterator[str]:
    """The ledger's URL: the configured one (its schema checked), or the embedded Postgres,
    held for the command: started if it is not running and stopped again when the last
    command holding it ends. The embedded database is migrated when it is resolved, so it is
    never refused. ``check_schema=False`` is for ``routeq db upgrade``, which migrates."""
    if settings.database_url is not None:
        if check_schema:
            require_schema(settings.database_url)
        yield settings.database_url
        return
    from routeq.embedded import hold

    # Only the database: with a broker URL in place, the embedded default resolves (starts,
    # migrates) Postgres alone. The placeholder is never connected to.
    database_only = settings.model_copy(update={"broker_url": _NO_BROKER})
    with hold(database_only) as endpoints:
        yield endpoints.database_url


@contextmanager
def ledger_engine(settings: Settings) -> Iterator[Engine]:
    """A small engine on the ledger (see :func:`database_url`), disposed of on the way out."""
    from routeq.ledger import make_engine

    with database_url(settings) as url:
        engine = make_engine(url, pool_size=1)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def reading_client(settings: Settings) -> Iterator[Client]:
    """A Client that only reads the ledger (``routeq status``): on the embedded default it
    gets the placeholder broker instead of an embedded Redis it would never use; it publishes
    nothing, so the broker is never connected to."""
    from routeq.client import Client

    with database_url(settings) as url:
        broker = settings.broker_url or _NO_BROKER
        reading = settings.model_copy(update={"database_url": url, "broker_url": broker})
        with Client(reading) as client:
            yield client
