"""Reproducible installs: constraints.txt pins every dependency pyproject.toml names, and the
Makefile (so CI) and the Dockerfile install through it; the sdist carries the migrations."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    """The normalised project name of a requirement string ('celery[redis]>=5' -> 'celery')."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def pins() -> dict[str, str]:
    found = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            found[_name(name)] = version
    return found


def test_every_dependency_and_extra_is_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for requirements in project["optional-dependencies"].values():
        wanted += [r for r in requirements if not r.startswith("routeq")]
    wanted += tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = pins()
    missing = sorted({_name(r) for r in wanted} - set(pinned))
    assert not missing, f"not in constraints.txt (run `make constraints`): {missing}"
    assert "routeq" not in pinned and "pip" not in pinned


def test_the_makefile_and_the_dockerfile_install_through_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet -c constraints.txt -e '.[test]'" in makefile
    assert "make install" in (REPO / ".ci" / "run").read_text()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ENV PIP_CONSTRAINT=/app/constraints.txt" in dockerfile
    assert "COPY pyproject.toml setup.py MANIFEST.in README.md constraints.txt" in dockerfile
    assert "pip install -e" not in dockerfile  # the image runs the installed package


def test_the_sdist_carries_the_migrations() -> None:
    assert "graft migrations" in (REPO / "MANIFEST.in").read_text()
