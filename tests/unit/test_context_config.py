"""Configuration of context-window fitting: the judge's window and the per-tier token margin."""

from __future__ import annotations

from pathlib import Path

import pytest
from tierspec import tier_dict

from routeq.config import load_settings
from routeq.errors import ConfigError
from routeq.judges import JudgeBudget
from routeq.tokens import DEFAULT_TOKEN_MARGIN


def test_defaults_margin_a_fifth_and_leave_the_judge_window_unset() -> None:
    settings = load_settings(tiers=[tier_dict("a")])
    assert settings.tiers[0].token_margin == DEFAULT_TOKEN_MARGIN == 0.2
    assert settings.judge.context_window is None
    assert settings.judge.token_margin == DEFAULT_TOKEN_MARGIN


def test_judge_window_and_margins_load_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "routeq.toml"
    path.write_text(
        "[[tiers]]\n"
        'name = "cheap"\nprovider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'model = "m"\ninput_price_per_mtok = 1\noutput_price_per_mtok = 1\n'
        "context_window = 8192\ntoken_margin = 0.3\n"
        "[judge]\ncontext_window = 2048\ntoken_margin = 0.25\n",
        encoding="utf-8",
    )
    settings = load_settings(path)
    assert settings.tiers[0].token_margin == 0.3
    assert (settings.judge.context_window, settings.judge.token_margin) == (2048, 0.25)


def test_judge_window_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTEQ_JUDGE__CONTEXT_WINDOW", "4096")
    assert load_settings().judge.context_window == 4096


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tiers": [tier_dict("a", token_margin=-0.1)]}, "token_margin"),
        ({"tiers": [tier_dict("a", token_margin=1.5)]}, "token_margin"),
        ({"judge": {"context_window": 0}}, "context_window"),
    ],
)
def test_impossible_values_fail_at_load(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_settings(**overrides)


def test_a_budget_from_the_judge_settings() -> None:
    settings = load_settings(judge={"context_window": 2048, "token_margin": 0.1})
    judge = settings.judge
    assert judge.model is not None and judge.context_window is not None
    budget = JudgeBudget(judge.context_window, judge.model.max_output_tokens, judge.token_margin)
    assert budget.prompt_tokens == 930  # (2048 - 1024 reply tokens) / 1.1, rounded down
