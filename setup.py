"""Build hook: ship the top-level ``migrations/`` inside the wheel as ``routeq/_migrations``.

Everything else about the package is declared in pyproject.toml. The migrations stay at the top
of the checkout (where Alembic users look for them and where ``alembic`` commands run), and a
routeq installed from a wheel still finds them: ``routeq.ledger.migrate`` looks inside the
package first, then beside the source tree (an editable install reads the checkout directly).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "migrations"


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads ROOT/migrations in place
        target = Path(self.build_lib) / "routeq" / "_migrations"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithMigrations})
