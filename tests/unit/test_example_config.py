"""The commented example config in the repository stays loadable (README points users at it)."""

from __future__ import annotations

from pathlib import Path

from routeq.config import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "routeq.example.toml"


def test_example_config_loads_with_all_sections() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.tier_names == ["cheap", "mid", "frontier"]
    assert settings.tier("frontier").provider == "anthropic"
    assert settings.judge.model is not None and settings.judge.pass_threshold == 6
    assert settings.routing.rules is not None and len(settings.routing.rules) == 7
    assert [r.task for r in settings.routing.rules][:2] == ["summarize", "summarize"]
    assert settings.summarize.max_chunk_tokens == 3000
    assert settings.summarize.spec.max_words == 120
    limits = settings.time_limits  # derived from the example ladder (60 s tiers)
    assert (limits.soft_s, limits.hard_s, limits.visibility_s) == (455, 485, 640)
    assert settings.worker.reconcile_interval_s == 10
