"""The simulated models' fault-test knobs: ``omit_usage`` and ``echo_special``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routeq.sim import SimConfig, SimModel, default_sim_config, load_sim_config
from routeq.sim.models import ECHOED_SPECIAL_TOKEN, complete, generate, truncate_outcome
from routeq.tokens import count_tokens


def config(**knobs: bool) -> SimConfig:
    models = [
        SimModel(name="m", quality=0.5, latency_ms=0, **knobs),
        SimModel(name="j", quality=1.0, latency_ms=0, judge=True, **knobs),
    ]
    return SimConfig(seed=0, models={model.name: model for model in models})


def ask(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


def test_knobs_default_off_and_answers_unchanged() -> None:
    model = SimModel(name="m", quality=0.5)
    assert (model.omit_usage, model.echo_special) == (False, False)
    plain, knobs_off = config(), config(omit_usage=False, echo_special=False)
    for i in range(50):
        outcome = generate(plain, "m", ask(f"question {i}"))
        assert outcome == generate(knobs_off, "m", ask(f"question {i}"))
        assert ECHOED_SPECIAL_TOKEN not in outcome.content
        assert outcome.usage == {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
        }


def test_omit_usage_leaves_the_answer_and_drops_the_usage_object() -> None:
    with_usage, without = config(), config(omit_usage=True)
    for name in ("m", "j"):
        for i in range(20):
            messages = ask(f"[sim:m q=0.8] answer {i}")
            normal = complete(with_usage, name, messages)
            omitted = complete(without, name, messages)
            assert omitted.usage is None and normal.usage is not None
            assert omitted.content == normal.content
    # A max_tokens cut keeps the flag (complete() above is also a simulated timeout's answer).
    cut = truncate_outcome(complete(without, "m", ask("long question")), 3)
    assert cut.finish_reason == "length" and cut.usage is None


def test_echo_special_puts_the_literal_token_in_every_answer() -> None:
    plain, echo = config(), config(echo_special=True)
    kinds = set()
    for i in range(60):
        messages = ask(f"Write a Python function number {i}")
        normal, echoed = complete(plain, "m", messages), complete(echo, "m", messages)
        kinds.add(echoed.kind)
        assert echoed.content == f"{normal.content} {ECHOED_SPECIAL_TOKEN}"
        assert echoed.content.startswith("[sim:m q=")
        assert echoed.completion_tokens > normal.completion_tokens
        assert count_tokens(echoed.content) > count_tokens(normal.content)  # counted, not refused
    assert len(kinds) > 1  # good and bad answers alike


def test_echo_special_keeps_judge_verdicts_valid_json() -> None:
    echo = config(echo_special=True)
    messages = ask("Grade this: [sim:m q=0.90] An answer.")
    verdict = json.loads(complete(echo, "j", messages).content)
    plain = json.loads(complete(config(), "j", messages).content)
    assert verdict["score"] == plain["score"] == 9
    assert verdict["reason"] == f"{plain['reason']} {ECHOED_SPECIAL_TOKEN}"


def test_knobs_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        "[models.sim-small]\nquality = 0.5\nomit_usage = true\necho_special = true\n",
        encoding="utf-8",
    )
    model = load_sim_config(path).models["sim-small"]
    assert model.omit_usage and model.echo_special
    path.write_text("[models.sim-small]\nquality = 0.5\nomit_usage = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'omit_usage': expected a boolean"):
        load_sim_config(path)


def test_default_lineup_has_knobs_off() -> None:
    for model in default_sim_config().models.values():
        assert not model.omit_usage and not model.echo_special
