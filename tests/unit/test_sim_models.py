"""Unit tests of the simulated provider's pure logic (routeq.sim.models)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from routeq.sim import SimConfig, SimModel, default_sim_config, load_sim_config
from routeq.sim.models import (
    ESCALATE_TOKEN,
    SimOutcome,
    context_overflow,
    estimate_prompt_tokens,
    generate,
    truncate_outcome,
)

MARKER = re.compile(r"^\[sim:(?P<model>[^\s\]]+) q=(?P<q>\d\.\d\d)\] ")


def user(text: str, system: str | None = None) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    return messages


def one_model(**kwargs: float) -> SimConfig:
    """A config with a single model ``m`` (quality 0.5 unless overridden)."""
    fields: dict[str, float] = {"quality": 0.5, "latency_ms": 0.0}
    fields.update(kwargs)
    return SimConfig(seed=0, models={"m": SimModel(name="m", **fields)})


# ---------------------------------------------------------------- defaults and determinism


def test_default_config_models() -> None:
    config = default_sim_config(seed=3)
    assert config.seed == 3
    assert set(config.models) == {"sim-small", "sim-medium", "sim-large", "sim-judge"}
    small, large = config.models["sim-small"], config.models["sim-large"]
    assert (small.quality, small.latency_ms, small.output_tokens) == (0.55, 15, 60)
    assert (large.quality, large.latency_ms, large.output_tokens) == (0.97, 60, 120)
    assert config.models["sim-judge"].judge
    assert not config.models["sim-medium"].judge


def test_same_seed_same_outcome() -> None:
    a, b = default_sim_config(seed=11), default_sim_config(seed=11)
    for i in range(50):
        messages = user(f"question number {i}")
        assert generate(a, "sim-medium", messages, 0) == generate(b, "sim-medium", messages, 0)


def test_answer_does_not_depend_on_attempt() -> None:
    config = default_sim_config()
    messages = user("What is a monad?")
    first = generate(config, "sim-small", messages, 0)
    assert all(generate(config, "sim-small", messages, n) == first for n in range(1, 10))


def test_different_seed_different_outcomes() -> None:
    a, b = default_sim_config(seed=1), default_sim_config(seed=2)
    outcomes_a = [generate(a, "sim-small", user(f"prompt {i}"), 0).content for i in range(100)]
    outcomes_b = [generate(b, "sim-small", user(f"prompt {i}"), 0).content for i in range(100)]
    differing = sum(x != y for x, y in zip(outcomes_a, outcomes_b, strict=True))
    assert differing > 80


def test_content_always_starts_with_marker() -> None:
    config = default_sim_config()
    for name in ("sim-small", "sim-medium", "sim-large"):
        for i in range(200):
            outcome = generate(config, name, user(f"q{i}", system=ESCALATE_TOKEN), 0)
            match = MARKER.match(outcome.content)
            assert match is not None, outcome.content
            assert match["model"] == name
            assert match["q"] == f"{outcome.quality:.2f}"


def test_prompt_tokens_estimate() -> None:
    config = default_sim_config()
    messages = user("x" * 40, system="y" * 20)
    outcome = generate(config, "sim-large", messages, 0)
    assert outcome.prompt_tokens == 60 // 4 + 4 * 2


@pytest.mark.parametrize("name", ["sim-small", "sim-medium", "sim-large"])
def test_quality_rate_matches(name: str) -> None:
    config = default_sim_config(seed=5)
    outcomes = [generate(config, name, user(f"independent prompt #{i}"), 0) for i in range(2000)]
    good_share = sum(o.kind == "good" for o in outcomes) / len(outcomes)
    assert abs(good_share - config.models[name].quality) <= 0.05
    for outcome in outcomes:
        if outcome.kind == "good":
            assert 0.7 <= outcome.quality <= 1.0
            assert outcome.finish_reason == "stop"
        else:
            assert 0.1 <= outcome.quality < 0.5


def test_good_answer_roughly_output_tokens_long() -> None:
    config = default_sim_config()
    goods = [generate(config, "sim-large", user(f"topic {i}"), 0) for i in range(40)]
    goods = [o for o in goods if o.kind == "good"]
    assert goods
    for outcome in goods:
        assert 120 * 0.7 <= outcome.completion_tokens <= 120
        assert "-character question." in outcome.content


# ---------------------------------------------------------------- faults


def test_faults_reroll_per_attempt() -> None:
    config = one_model(quality=1.0, fault_429=0.5)
    messages = user("retry me")
    faults = [generate(config, "m", messages, n).fault for n in range(40)]
    assert "429" in faults
    assert None in faults
    # Each attempt is itself deterministic.
    assert faults == [generate(config, "m", messages, n).fault for n in range(40)]


def test_fault_order_and_rates() -> None:
    config = one_model(fault_429=0.1, fault_500=0.1, fault_timeout=0.1, fault_malformed=0.1)
    counts: dict[object, int] = {}
    for i in range(2000):
        fault = generate(config, "m", user(f"p{i}"), 0).fault
        counts[fault] = counts.get(fault, 0) + 1
    for fault in ("429", "500", "timeout", "malformed"):
        assert abs(counts[fault] / 2000 - 0.1) < 0.03
    assert abs(counts[None] / 2000 - 0.6) < 0.05


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "malformed"])
def test_certain_fault(fault: str) -> None:
    field = {"429": "fault_429", "500": "fault_500"}.get(fault, f"fault_{fault}")
    config = one_model(**{field: 1.0})
    outcome = generate(config, "m", user("anything"), 3)
    assert outcome.fault == fault
    assert not outcome.ok


# ---------------------------------------------------------------- content rules


def _find(
    config: SimConfig, model: str, kind: str, text: str, system: str | None = None
) -> SimOutcome:
    """First outcome of the given kind among numbered variants of ``text``."""
    for i in range(500):
        outcome = generate(config, model, user(f"{text} #{i}", system=system), 0)
        if outcome.kind == kind:
            return outcome
    raise AssertionError(f"no {kind} outcome found")


@pytest.mark.parametrize("word", ["code", "Function", "PYTHON", "script", "implement"])
def test_good_code_answer_has_code_block(word: str) -> None:
    config = default_sim_config()
    for i in range(30):
        outcome = generate(config, "sim-large", user(f"Please {word} something {i}"), 0)
        if outcome.kind == "good":
            assert "```python\n" in outcome.content
            assert outcome.content.count("```") == 2


def test_no_code_block_without_code_request() -> None:
    config = default_sim_config()
    for i in range(30):
        outcome = generate(config, "sim-large", user(f"Tell me about rivers {i}"), 0)
        assert "```" not in outcome.content


def test_vague_answer_has_no_code_even_when_asked() -> None:
    config = default_sim_config()
    outcome = _find(config, "sim-small", "vague", "write python code")
    assert "```" not in outcome.content
    assert outcome.finish_reason == "stop"


def test_refusal_and_truncated_kinds() -> None:
    config = default_sim_config()
    refusal = _find(config, "sim-small", "refusal", "explain")
    assert refusal.content.endswith("I'm sorry, but I can't help with that.")
    truncated = _find(config, "sim-small", "truncated", "explain")
    assert truncated.finish_reason == "length"
    assert MARKER.match(truncated.content)


def test_escalate_only_with_system_token() -> None:
    config = default_sim_config(seed=9)
    with_token = [
        generate(config, "sim-small", user(f"q{i}", system=f"rules {ESCALATE_TOKEN}"), 0)
        for i in range(1000)
    ]
    bad = [o for o in with_token if o.kind != "good"]
    escalations = [o for o in bad if o.kind == "escalate"]
    assert 0.4 <= len(escalations) / len(bad) <= 0.6
    for outcome in escalations:
        match = MARKER.match(outcome.content)
        assert match is not None
        assert outcome.content == match.group(0) + ESCALATE_TOKEN
    # Good answers are never escalations.
    assert all(ESCALATE_TOKEN not in o.content for o in with_token if o.kind == "good")

    without = [generate(config, "sim-small", user(f"q{i}", system="rules"), 0) for i in range(300)]
    assert all(o.kind != "escalate" for o in without)
    # Token in the user message does not count.
    in_user = [generate(config, "sim-small", user(f"{ESCALATE_TOKEN} {i}"), 0) for i in range(300)]
    assert all(o.kind != "escalate" for o in in_user)


# ---------------------------------------------------------------- judge


@pytest.mark.parametrize(("q", "score"), [("0.00", 1), ("0.50", 6), ("0.86", 9), ("1.00", 10)])
def test_judge_scores_from_marker(q: str, score: int) -> None:
    config = default_sim_config()
    answer = f"[sim:sim-small q={q}] Some answer."
    outcome = generate(config, "sim-judge", user(f"Grade this answer:\n{answer}"), 0)
    assert outcome.finish_reason == "stop"
    payload = json.loads(outcome.content)
    assert payload == {"score": score, "reason": f"simulated judge: answer quality {q}"}


def test_judge_agrees_with_generated_answer() -> None:
    config = default_sim_config()
    answer = generate(config, "sim-medium", user("Explain TCP"), 0)
    verdict = json.loads(generate(config, "sim-judge", user(answer.content), 0).content)
    assert verdict["score"] == max(1, min(10, round(1 + 9 * float(f"{answer.quality:.2f}"))))


def test_judge_without_marker_is_deterministic() -> None:
    config = default_sim_config()
    scores = []
    for i in range(100):
        messages = user(f"a real-looking answer {i}")
        first = json.loads(generate(config, "sim-judge", messages, 0).content)
        again = json.loads(generate(config, "sim-judge", messages, 0).content)
        assert first == again
        assert 1 <= first["score"] <= 9
        scores.append(first["score"])
    assert len(set(scores)) > 3


# ---------------------------------------------------------------- truncation helper


def test_truncate_outcome_keeps_marker() -> None:
    config = default_sim_config()
    outcome = _find(config, "sim-large", "good", "long answer please")
    cut = truncate_outcome(outcome, 10)
    assert cut.finish_reason == "length"
    assert cut.completion_tokens == 10
    assert len(cut.content) <= 40
    assert MARKER.match(cut.content)
    tiny = truncate_outcome(outcome, 1)
    assert MARKER.match(tiny.content)
    assert truncate_outcome(outcome, 10_000) == outcome
    assert truncate_outcome(outcome, None) == outcome


# ---------------------------------------------------------------- model validation


def test_model_validation() -> None:
    with pytest.raises(ValueError, match="quality"):
        SimModel(name="m", quality=1.5)
    with pytest.raises(ValueError, match="fault_500"):
        SimModel(name="m", quality=0.5, fault_500=-0.1)
    with pytest.raises(ValueError, match="sum"):
        SimModel(name="m", quality=0.5, fault_429=0.6, fault_500=0.6)
    with pytest.raises(ValueError, match="key does not match"):
        SimConfig(seed=0, models={"a": SimModel(name="b", quality=0.5)})
    model = SimModel(name="m", quality=0.5)
    assert replace(model, quality=0.9).quality == 0.9


# ---------------------------------------------------------------- config loading


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sim.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
seed = 42
timeout_sleep_s = 0.5

[models.fast]
quality = 0.5
latency_ms = 1
output_tokens = 30
fault_429 = 0.25
retry_after_s = 1

[models.judge]
quality = 1
judge = true
""",
    )
    config = load_sim_config(path)
    assert config.seed == 42
    assert config.timeout_sleep_s == 0.5
    assert config.models["fast"] == SimModel(
        name="fast",
        quality=0.5,
        latency_ms=1.0,
        output_tokens=30,
        fault_429=0.25,
        retry_after_s=1.0,
    )
    assert config.models["judge"].judge
    assert isinstance(config.models["judge"].quality, float)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("[models.m]\nquality = 0.5\nqualty = 0.9\n", ["model 'm'", "qualty", "unknown"]),
        ("[models.m]\nquality = 'high'\n", ["model 'm'", "quality", "number"]),
        ("[models.m]\nquality = 0.5\noutput_tokens = 1.5\n", ["model 'm'", "output_tokens"]),
        ("[models.m]\nquality = 0.5\njudge = 1\n", ["model 'm'", "judge", "boolean"]),
        ("[models.m]\nquality = true\n", ["model 'm'", "quality"]),
        ("[models.m]\nquality = 2.0\n", ["model 'm'", "quality"]),
        ("[models.m]\nlatency_ms = 3\n", ["model 'm'", "quality", "missing"]),
        ("[models.m]\nquality = 0.5\nname = 'other'\n", ["model 'm'", "name"]),
        ("seed = 'x'\n[models.m]\nquality = 0.5\n", ["seed"]),
        ("bogus = 1\n[models.m]\nquality = 0.5\n", ["bogus"]),
        ("seed = 1\n", ["models"]),
        ("this is not toml", ["invalid TOML"]),
    ],
)
def test_load_config_errors(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ValueError) as info:
        load_sim_config(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


# ---------------------------------------------------------------- context window knob


def test_context_window_is_off_by_default() -> None:
    assert SimModel(name="m", quality=0.5).context_window is None
    for model in default_sim_config().models.values():
        assert model.context_window is None
    huge = user("word " * 200_000)
    assert context_overflow(SimModel(name="m", quality=0.5), huge, 1024) is None


def test_a_request_over_the_window_gets_openais_context_length_error() -> None:
    model = SimModel(name="m", quality=0.5, context_window=100)
    messages = user("x" * 400)  # 100 tokens at 4 characters each, plus 4 for the message
    assert estimate_prompt_tokens(messages) == 104

    body = context_overflow(model, messages, 16)

    assert body is not None
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(
        "This model's maximum context length is 100 tokens. However, you requested 120 tokens "
        "(104 in the messages, 16 in the completion)."
    )


@pytest.mark.parametrize(
    ("window", "max_tokens", "refused"),
    [(104, None, False), (103, None, True), (120, 16, False), (119, 16, True)],
)
def test_the_window_holds_the_prompt_plus_max_tokens(
    window: int, max_tokens: int | None, refused: bool
) -> None:
    model = SimModel(name="m", quality=0.5, context_window=window)
    assert (context_overflow(model, user("x" * 400), max_tokens) is not None) is refused


def test_context_window_loads_from_toml_and_is_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[models.sim-judge]\nquality = 1.0\njudge = true\ncontext_window = 2048\n"
    )
    assert load_sim_config(path).models["sim-judge"].context_window == 2048
    path = write(tmp_path, "[models.m]\nquality = 0.5\ncontext_window = 0\n")
    with pytest.raises(ValueError, match="'context_window': must be >= 1"):
        load_sim_config(path)
    path = write(tmp_path, "[models.m]\nquality = 0.5\ncontext_window = 2048.0\n")
    with pytest.raises(ValueError, match="'context_window': expected an integer"):
        load_sim_config(path)
