"""``write_config`` hands a configuration to worker processes as a TOML file: what it writes
must read back as the same settings, whatever the user put in names, keys and text."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from routeq import tomlwrite
from routeq.config import RoutingConfig, RuleConfig, Settings, load_settings, write_config


def test_the_default_settings_read_back_unchanged(tmp_path: Path) -> None:
    settings = Settings()
    path = write_config(settings, tmp_path / "routeq.toml")
    assert load_settings(path).model_dump() == settings.model_dump()


def test_prices_stay_exact(tmp_path: Path) -> None:
    settings = Settings()
    cheap = settings.tiers[0].model_copy(update={"input_price_per_mtok": Decimal("0.1234567891")})
    settings = settings.model_copy(update={"tiers": [cheap, *settings.tiers[1:]]})
    path = write_config(settings, tmp_path / "routeq.toml")
    assert load_settings(path).tiers[0].input_price_per_mtok == Decimal("0.1234567891")


def test_keys_and_text_a_user_chose_read_back(tmp_path: Path) -> None:
    """Metadata keys are the user's own: non-ASCII letters, dots, spaces and quotes must be
    quoted keys, and text with quotes, backslashes and newlines must stay as written."""
    rule = RuleConfig(
        name='say "hi"\\now',
        tier="cheap",
        keywords=["naïve", "tab\there", "line\nbreak"],
        metadata={"tâche": "résumé", "a.b": "dotted", "with space": "x", "": "empty key"},
        forbid_chars="'\"",
    )
    settings = Settings(routing=RoutingConfig(rules=[rule]))
    path = write_config(settings, tmp_path / "routeq.toml")
    assert load_settings(path).routing.model_dump() == settings.routing.model_dump()


def test_none_values_are_left_out_at_every_level() -> None:
    text = tomlwrite.dumps({"a": None, "b": {"c": None, "d": 1}, "e": [{"f": None, "g": "x"}]})
    assert tomllib.loads(text) == {"b": {"d": 1}, "e": [{"g": "x"}]}
