"""Unit tests of the simulated models' answers to summarization requests (routeq.sim.models).

The checks below restate the summary rules locally (format, length, no copying, no new numbers,
no new names) so these tests do not depend on the real summary judge.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from routeq.sim import SimConfig, SimModel, default_sim_config
from routeq.sim.models import ESCALATE_TOKEN, SimOutcome, complete, generate
from routeq.summary_spec import (
    SummarySpec,
    SummaryTask,
    combine_text,
    summary_messages,
)

MARKER = re.compile(r"^\[sim:(?P<model>[^\s\]]+) q=(?P<q>\d\.\d\d)\] ")
WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
LIST_LINE = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s|^\s*#")
ENGLISH = frozenset(
    {"the", "a", "an", "and", "of", "to", "in", "is", "was", "with", "for", "on", "that", "by"}
    | {"as", "at", "from", "it", "its", "said", "also", "were", "has", "had", "this", "which"}
)

REPORT = """Northwind Analytics Annual Report 2024

Northwind Analytics closed the 2024 fiscal year with revenue of $48.2 million, up 17% from the \
previous year. Growth came mainly from the Atlas forecasting platform, which now serves 312 \
enterprise customers across Europe and North America. The company opened a new office in Lisbon \
in March and hired 64 engineers during the year.

Operating costs rose to $39.5 million, driven by cloud spending and the expansion of the support \
team. Chief Financial Officer Maria Okafor said the margin pressure was expected and should ease \
in 2025 as the Lisbon team becomes productive. Net profit was $5.1 million, compared with \
$4.4 million in 2023.

The board approved a dividend of 12 cents per share and a buyback programme worth $10 million. \
Risks highlighted in the report include currency exposure, a pending patent dispute with Helix \
Data, and the departure of two senior sales directors. Management expects revenue between \
$54 million and $57 million next year, with the Atlas platform contributing about two thirds \
of it.

In the second half of the year the company also migrated its billing system to a new provider, \
retired the legacy Beacon dashboard that had been in service since 2016, and moved its data \
centre contracts from Frankfurt to Dublin, which cut hosting costs by 9% in the fourth quarter \
alone. Customer satisfaction, measured by the annual survey of 1,480 users, improved from 7.9 to \
8.4 out of 10, and staff turnover fell to 11% from 14% a year earlier.
"""
PARAGRAPHS = [p for p in REPORT.split("\n\n") if p.strip()][1:]
SHORT_SOURCE = "Helix Data settled its dispute with Northwind Analytics in May 2025 for $2 million."

GOOD = SimConfig(seed=0, models={"good": SimModel(name="good", quality=1.0)})
BAD = SimConfig(seed=0, models={"bad": SimModel(name="bad", quality=0.0)})

# ---------------------------------------------------------------- local restatement of the rules


def words(text: str) -> list[str]:
    return WORD.findall(text)


def body(outcome: SimOutcome) -> str:
    match = MARKER.match(outcome.content)
    assert match is not None, outcome.content
    return outcome.content[match.end() :]


def format_ok(text: str, fmt: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if fmt == "bullets":
        return bool(lines) and all(line.startswith("- ") for line in lines)
    return not any(LIST_LINE.match(line) for line in lines)


def length_ok(text: str, spec: SummarySpec, source: str) -> bool:
    low = min(spec.min_words, max(1, len(words(source)) // 2))
    return low <= len(words(text)) <= spec.max_words


def longest_run(text: str, source: str) -> int:
    """Longest run of consecutive words shared by ``text`` and ``source`` (ignoring case)."""
    ours = [w.lower() for w in words(text)]
    theirs = [w.lower() for w in words(source)]
    best = 0
    previous = [0] * (len(theirs) + 1)
    for a in ours:
        current = [0] * (len(theirs) + 1)
        for j, b in enumerate(theirs, 1):
            if a == b:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def not_copy(text: str, spec: SummarySpec, source: str) -> bool:
    if longest_run(text, source) >= 30:
        return False
    source_words = len(words(source))
    return not (source_words > spec.max_words and len(words(text)) >= 0.8 * source_words)


def numbers_ok(text: str, source: str) -> bool:
    return set(NUMBER.findall(text)) <= set(NUMBER.findall(source))


def sentence_initial(text: str, start: int) -> bool:
    line = text[:start].rsplit("\n", 1)[-1]
    if line.strip() in ("", "-"):
        return True
    before = text[:start].rstrip().rstrip("\"'\u201c\u201d\u2019()")
    return not before or before[-1] in ".!?"


def names_ok(text: str, source: str) -> bool:
    known = set(words(source))
    for match in WORD.finditer(text):
        word = match.group()
        if word[0].isupper() and not sentence_initial(text, match.start()) and word not in known:
            return False
    return True


def english(text: str) -> bool:
    """Crude language check: enough common English words (too short a text always passes)."""
    lowered = [w.lower() for w in words(text)]
    if len(lowered) < 8:
        return True
    return sum(w in ENGLISH for w in lowered) >= max(1, len(lowered) // 10)


def violations(text: str, spec: SummarySpec, source: str) -> set[str]:
    """The names of the rules ``text`` breaks as a summary of ``source`` under ``spec``."""
    checks = {
        "format": format_ok(text, spec.format),
        "length": length_ok(text, spec, source),
        "copy": not_copy(text, spec, source),
        "numbers": numbers_ok(text, source),
        "names": names_ok(text, source),
        "language": english(text),
    }
    return {name for name, ok in checks.items() if not ok}


# ---------------------------------------------------------------- request helpers


def ask(
    config: SimConfig,
    model: str,
    text: str,
    task: SummaryTask,
    system: str | None = None,
) -> SimOutcome:
    return generate(config, model, summary_messages(task, text, system), 0)


def doc(**spec: Any) -> SummaryTask:
    return SummaryTask(spec=SummarySpec(**spec))


def part(index: int, total: int, **spec: Any) -> SummaryTask:
    return SummaryTask(role="part", part=index, parts=total, spec=SummarySpec(**spec))


def combine(**spec: Any) -> SummaryTask:
    return SummaryTask(role="combine", stage=1, spec=SummarySpec(**spec))


SPECS: list[dict[str, Any]] = [
    {},
    {"min_words": 40, "max_words": 60},
    {"min_words": 10, "max_words": 30},
    {"min_words": 60, "max_words": 200},
    {"min_words": 5, "max_words": 12},
    {"format": "bullets"},
    {"min_words": 30, "max_words": 50, "format": "bullets"},
]


def requests() -> Iterator[tuple[str, SummaryTask, str]]:
    """(source, task, tier system prompt) for every role, spec and a few tier prompts."""
    for spec in SPECS:
        for system in ("", f"Answer well. If unsure reply {ESCALATE_TOKEN}."):
            yield REPORT, doc(**spec), system
            yield SHORT_SOURCE, doc(**spec), system
            for index, paragraph in enumerate(PARAGRAPHS, 1):
                yield paragraph, part(index, len(PARAGRAPHS), **spec), system


# ---------------------------------------------------------------- good summaries


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_good_summaries_pass_every_rule(seed: int) -> None:
    config = SimConfig(seed=seed, models={"good": SimModel(name="good", quality=1.0)})
    for source, task, system in requests():
        outcome = ask(config, "good", source, task, system)
        text = body(outcome)
        assert outcome.kind == "good"
        assert outcome.finish_reason == "stop"
        assert 0.7 <= outcome.quality < 1.0
        assert violations(text, task.spec, source) == set(), (task, text)
        assert "-character question" not in text
        assert outcome.completion_tokens == -(-len(outcome.content) // 4)


def test_good_summary_is_built_from_the_source() -> None:
    outcome = ask(GOOD, "good", REPORT, doc())
    text = body(outcome)
    assert "Northwind Analytics" in text
    assert "$48.2 million" in text
    # Roughly the middle of 25..120 words, far below the length of the report.
    assert 50 <= len(words(text)) <= 100
    assert longest_run(text, REPORT) <= 18


def test_long_source_summary_stays_below_80_percent() -> None:
    wide = SummarySpec(min_words=100, max_words=250)
    source = " ".join(PARAGRAPHS[:2]).replace("\n", " ")
    assert 100 < len(words(source)) < 250
    outcome = ask(GOOD, "good", source, SummaryTask(spec=wide))
    assert violations(body(outcome), wide, source) == set()
    # Longer source than max_words: the summary must also be shorter than 80% of it.
    tight = SummarySpec(min_words=60, max_words=80)
    outcome = ask(GOOD, "good", source, SummaryTask(spec=tight))
    assert len(words(body(outcome))) < 0.8 * len(words(source))
    assert violations(body(outcome), tight, source) == set()


def test_bullets_requested_gives_bullets() -> None:
    outcome = ask(GOOD, "good", REPORT, doc(format="bullets"))
    lines = body(outcome).splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("- ") for line in lines)
    paragraph = body(ask(GOOD, "good", REPORT, doc()))
    assert "\n" not in paragraph
    assert not paragraph.startswith("- ")


def test_part_and_combine_prompts() -> None:
    partials = []
    for index, paragraph in enumerate(PARAGRAPHS, 1):
        outcome = ask(GOOD, "good", paragraph, part(index, len(PARAGRAPHS), format="bullets"))
        assert outcome.kind == "good"
        partials.append(body(outcome))
    merged = combine_text(partials)
    for fmt in ("paragraph", "bullets"):
        task = combine(format=fmt)
        outcome = ask(GOOD, "good", merged, task)
        text = body(outcome)
        assert outcome.kind == "good"
        assert violations(text, task.spec, merged) == set(), text
        assert "Part 1 summary" not in text
        assert "summary:" not in text


def test_source_given_as_bullets_summarised_as_paragraph() -> None:
    source = "\n".join(
        f"- Item {n}: Northwind shipped order {n} to Lisbon on day {n}." for n in range(1, 25)
    )
    for fmt in ("paragraph", "bullets"):
        task = doc(format=fmt)
        text = body(ask(GOOD, "good", source, task))
        assert violations(text, task.spec, source) == set(), text


def test_repetitive_source_is_not_copied() -> None:
    sentence = "The Lisbon office of Northwind Analytics hired 64 engineers in 2024."
    source = " ".join([sentence] * 20)
    for spec in SPECS:
        task = doc(**spec)
        text = body(ask(GOOD, "good", source, task))
        assert violations(text, task.spec, source) == set(), text


def test_tiny_and_empty_sources() -> None:
    for source in ("Northwind grew.", "", "2024"):
        for fmt in ("paragraph", "bullets"):
            task = doc(format=fmt)
            outcome = ask(GOOD, "good", source, task)
            text = body(outcome)
            assert text
            assert violations(text, task.spec, source) == set(), text


# ---------------------------------------------------------------- determinism


def test_deterministic() -> None:
    a, b = default_sim_config(seed=4), default_sim_config(seed=4)
    for source, task, system in requests():
        for name in ("sim-small", "sim-medium", "sim-large"):
            messages = summary_messages(task, source, system)
            first = generate(a, name, messages, 0)
            assert generate(b, name, messages, 0) == first
            assert complete(a, name, messages) == first or first.fault is not None


def test_depends_on_seed_and_model() -> None:
    contents = set()
    for seed in range(5):
        config = SimConfig(
            seed=seed,
            models={n: SimModel(name=n, quality=1.0) for n in ("x", "y")},
        )
        for name in ("x", "y"):
            contents.add(ask(config, name, REPORT, doc()).content)
    assert len(contents) > 5


# ---------------------------------------------------------------- bad summaries


@functools.cache
def bad_outcomes() -> list[tuple[SimOutcome, str, SummaryTask, str]]:
    """Bad answers of a quality-0 model to every request, under 25 seeds."""
    found = []
    for seed in range(25):
        config = SimConfig(seed=seed, models={"bad": SimModel(name="bad", quality=0.0)})
        for source, task, system in requests():
            found.append((ask(config, "bad", source, task, system), source, task, system))
    return found


def test_bad_summaries_each_break_their_rule() -> None:
    seen: dict[str, int] = {}
    for outcome, source, task, system in bad_outcomes():
        seen[outcome.kind] = seen.get(outcome.kind, 0) + 1
        assert 0.1 <= outcome.quality < 0.5
        assert MARKER.match(outcome.content)
        assert outcome.completion_tokens == -(-len(outcome.content) // 4)
        text = body(outcome)
        broken = violations(text, task.spec, source)
        if outcome.kind == "hallucination":
            assert {"numbers", "names"} <= broken, text
            assert broken <= {"numbers", "names"}, (broken, text)
        elif outcome.kind == "copy":
            assert "copy" in broken, text
            assert longest_run(text, source) >= 30
        elif outcome.kind == "format":
            assert broken == {"format"}, (broken, text)
        elif outcome.kind == "short":
            assert broken == {"length"}, (broken, text)
            assert 3 <= len(words(text)) <= 5
            assert task.spec.min_words > 5
        elif outcome.kind == "escalate":
            assert ESCALATE_TOKEN in system
            assert text == ESCALATE_TOKEN
        elif outcome.kind == "refusal":
            assert text == "I'm sorry, but I can't help with that."
        elif outcome.kind == "truncated":
            assert outcome.finish_reason == "length"
        else:
            raise AssertionError(f"unexpected kind {outcome.kind!r}")
        if outcome.kind != "truncated":
            assert outcome.finish_reason == "stop"
    expected = {"hallucination", "copy", "format", "short", "escalate", "refusal", "truncated"}
    assert set(seen) == expected
    assert min(seen.values()) > 20


def test_copy_and_short_only_when_they_would_fail() -> None:
    for outcome, source, task, _system in bad_outcomes():
        if outcome.kind == "copy":
            assert min(len(words(source)), task.spec.max_words) >= 30
        if outcome.kind == "short":
            low = min(task.spec.min_words, max(1, len(words(source)) // 2))
            assert low > 5


def test_copy_is_the_start_of_the_source() -> None:
    for outcome, source, task, _system in bad_outcomes():
        if outcome.kind == "copy":
            text = body(outcome)
            assert words(text) == words(source)[: task.spec.max_words]
            return
    raise AssertionError("no copy found")


def test_hallucination_avoids_facts_in_the_source() -> None:
    source = REPORT + (
        "\nQuorvex Labs, Zentharo Labs and Brixmoor Labs reported 37, 412, 58 and 73 units."
    )
    found = 0
    for seed in range(200):
        config = SimConfig(seed=seed, models={"bad": SimModel(name="bad", quality=0.0)})
        outcome = ask(config, "bad", source, doc())
        if outcome.kind == "hallucination":
            found += 1
            text = body(outcome)
            assert not numbers_ok(text, source)
            assert not names_ok(text, source)
            invented = re.split(r"(?<=\.) ", text)[-1]
            assert not numbers_ok(invented, source)
            assert not names_ok(invented, source)
            for known in ("Quorvex", "Zentharo", "Brixmoor", "37", "412", "58", "73"):
                assert known not in invented
    assert found


def test_escalate_needs_the_token() -> None:
    kinds = {outcome.kind for outcome, _s, _t, system in bad_outcomes() if not system}
    assert "escalate" not in kinds


# ---------------------------------------------------------------- other requests unchanged


def test_non_summary_requests_unchanged() -> None:
    config = GOOD
    # A summary-like system prompt without word bounds, or the instructions in the user turn,
    # is an ordinary request.
    for messages in (
        [{"role": "user", "content": "Please write python code to add numbers"}],
        [
            {"role": "system", "content": "Summarize things briefly."},
            {"role": "user", "content": "Please write python code to add numbers"},
        ],
        [
            {
                "role": "user",
                "content": "Summarize the python code below in 25-120 words:\nprint(1)",
            }
        ],
    ):
        outcome = generate(config, "good", messages, 0)
        assert outcome.kind == "good"
        assert "-character question." in outcome.content
        assert "```python\n" in outcome.content

    vague = [
        generate(BAD, "bad", [{"role": "user", "content": f"Explain rivers {i}"}], 0).kind
        for i in range(60)
    ]
    assert "vague" in vague
    assert not {"hallucination", "copy", "format", "short"} & set(vague)
