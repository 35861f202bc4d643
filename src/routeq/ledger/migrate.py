"""Running the Alembic migrations from code (``routeq db upgrade``, tests, the demo).

The migrations live at the top of the checkout (``migrations/``); a wheel carries a copy inside
the package (``routeq/_migrations``, put there by the build hook in ``setup.py``), so a routeq
installed from a wheel migrates its database without a checkout. Only the database is needed:
nothing here (nor in the Alembic environment, which imports the table models) touches the broker.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_PACKAGED = Path(__file__).resolve().parents[1] / "_migrations"  # inside an installed wheel
_CHECKOUT = Path(__file__).resolve().parents[3] / "migrations"  # an editable install


def migrations_dir() -> Path:
    """Where the Alembic scripts are: the copy inside the package, else the source checkout."""
    for candidate in (_PACKAGED, _CHECKOUT):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"routeq's migrations are missing: neither {_PACKAGED} nor {_CHECKOUT} holds env.py; "
        "reinstall routeq from a wheel built by `pip wheel .`, or install the checkout with "
        "`pip install -e .`"
    )


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
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
