"""Running the Alembic migrations from code (``routeq db upgrade``, tests, the demo)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(database_url: str) -> Config:
    if not (MIGRATIONS_DIR / "env.py").exists():
        raise FileNotFoundError(
            f"migrations not found at {MIGRATIONS_DIR}: run routeq from its source checkout "
            "(pip install -e .)"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats '%' specially; URLs may contain escapes.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def current_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()


def wait_for_database(database_url: str, timeout_s: float) -> None:
    """Block until the database accepts connections, for up to ``timeout_s`` seconds: a
    migration job started with the database (compose, Kubernetes) must not fail on its boot."""
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from routeq.errors import RouteqError

    engine = create_engine(database_url, hide_parameters=True)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
                return
            except OperationalError as error:
                if time.monotonic() >= deadline:
                    if timeout_s <= 0:
                        raise
                    reason = str(error.orig).strip().splitlines()[0] if error.orig else error
                    raise RouteqError(
                        f"database not reachable after {timeout_s:g}s: {reason}"
                    ) from None
                time.sleep(1.0)
    finally:
        engine.dispose()
