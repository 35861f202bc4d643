"""A routeq installed from a wheel (not the editable checkout) migrates an empty database.

The wheel is built from a copy of the checkout's packaging inputs without build isolation and
without an index (offline), installed without dependencies into a fresh virtualenv that borrows
the test environment's installed dependencies, and then runs ``routeq db upgrade`` with only a
database configured: no broker, no checkout on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import sqlalchemy as sa

from routeq.ledger.migrate import current_head

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "migrations")


def run(*argv: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=240, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with routeq installed from a freshly built wheel; its python."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build never writes into the checkout
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    wheels = root / "wheels"
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source)
    [wheel] = wheels.glob("routeq-*.whl")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel)
    # The dependencies come from this test environment (no network): its site-packages after
    # the venv's own, so the wheel's routeq is found first.
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(purelib.stdout.strip()) / "borrowed-deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    return python


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTEQ_", "PYTHON"))}
    env.update(ROUTEQ_STATE_DIR=str(tmp_path / "state"), **extra)
    return env


def test_the_wheel_ships_the_migrations_and_runs_from_site_packages(
    installed: Path, tmp_path: Path
) -> None:
    found = run(
        installed,
        "-c",
        "import routeq, routeq.ledger.migrate as m, routeq.ledger.sql as q; "
        "print(routeq.__file__); print(m.migrations_dir()); print(len(q.source('metrics_totals')))",
        cwd=tmp_path,
        env=clean_env(tmp_path),
    ).stdout.split()
    venv = str(installed.parent.parent)
    assert found[0].startswith(venv) and "site-packages" in found[0], found
    assert found[1].startswith(venv) and found[1].endswith("_migrations"), found
    assert int(found[2]) > 0


def test_routeq_db_upgrade_from_the_wheel_migrates_an_empty_database_without_a_broker(
    installed: Path, tmp_path: Path, scratch_url: str
) -> None:
    env = clean_env(tmp_path, ROUTEQ_DATABASE_URL=scratch_url)  # no ROUTEQ_BROKER_URL
    result = run(installed.parent / "routeq", "db", "upgrade", cwd=tmp_path, env=env)
    assert "up to date" in result.stdout
    assert not (tmp_path / "state" / "redis").exists(), "db upgrade started a broker"
    engine = sa.create_engine(scratch_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            views = set(
                conn.execute(sa.text("SELECT viewname FROM pg_views WHERE schemaname = 'public'"))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert version == current_head()
    assert {"query_journeys", "escalations", "spend_daily", "top_tier_counterfactual"} <= views


def test_migrating_imports_nothing_of_the_broker(
    installed: Path, tmp_path: Path, scratch_url: str
) -> None:
    script = (
        "import sys\n"
        "from routeq.ledger.migrate import upgrade\n"
        f"upgrade({scratch_url!r})\n"
        "broker = {'celery', 'kombu', 'redis'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in broker)\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    run(installed, "-c", script, cwd=tmp_path, env=clean_env(tmp_path))
