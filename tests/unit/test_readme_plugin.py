"""The README's plugin-policy example works as printed: the module registers its policy, the
TOML selects and configures it, and the router decides with it."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from routeq.config import load_settings
from routeq.policies import QueryView, build_router

README = Path(__file__).resolve().parents[2] / "README.md"


def snippet(after: str, language: str) -> str:
    text = README.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match is not None
    return match.group(1)


def test_the_readme_plugin_policy_example_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    module = snippet("**Policies are plugins.**", "python")
    assert module.startswith("# my_policies.py")
    (tmp_path / "my_policies.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    routing = tomllib.loads(snippet("**Policies are plugins.**", "toml"))["routing"]
    try:
        settings = load_settings(routing=routing)
        router = build_router(settings)
        short = router.decide(QueryView("hi there", 3), calls=None)  # type: ignore[arg-type]
        long = router.decide(QueryView("x" * 41, 10), calls=None)  # type: ignore[arg-type]
    finally:
        sys.modules.pop("my_policies", None)
    assert (short.tier, short.policy, short.version) == ("cheap", "length-threshold", "1")
    assert long.tier == "frontier" and long.reason == "41 chars"


def test_two_modules_cannot_register_the_same_policy_name() -> None:
    from routeq.config import NamedConfig
    from routeq.policies import register_policy

    class Rules(NamedConfig):
        name: str = "rules"

    def impostor(config: object, settings: object) -> object:
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="registered twice"):
        register_policy(Rules)(impostor)  # type: ignore[arg-type]


def test_a_policy_name_or_version_the_route_hop_cannot_hold_is_refused(
    settings: object,
) -> None:
    from dataclasses import dataclass

    from routeq.policies import Decision, InvalidDecisionError

    @dataclass
    class Verbose:
        version: str
        name: str = "verbose"
        features: tuple[()] = ()
        decision_version: str | None = None

        def decide(self, query: QueryView) -> Decision:
            return Decision("cheap", "ok", version=self.decision_version)

    with pytest.raises(ValueError, match="version must be a string of 1 to 80"):
        build_router(settings, Verbose("v" * 81))  # type: ignore[arg-type]
    router = build_router(settings, Verbose("1", decision_version="x" * 81))  # type: ignore[arg-type]
    with pytest.raises(InvalidDecisionError, match="longer than 80"):
        router.decide(QueryView("hi", 1), calls=None)  # type: ignore[arg-type]


def test_a_plugin_module_in_the_current_directory_is_found_as_the_routeq_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    # the `routeq` console script does not put the current directory on sys.path
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(clean_env))])
    module = snippet("**Policies are plugins.**", "python").replace("length-threshold", "cwd")
    (clean_env / "cwd_plugin.py").write_text(module)
    try:
        settings = load_settings(routing={"plugins": ["cwd_plugin"], "policy": "cwd"})
    finally:
        sys.modules.pop("cwd_plugin", None)
    assert settings.routing.policy.name == "cwd"
