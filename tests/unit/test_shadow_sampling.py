"""Shadow A/B's pure parts: which tier a shadow runs on, which queries are sampled, the pairwise
judge's prompt and reply, the intervals the report shows, and the priority shadows publish at."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from routeq.config import Settings
from routeq.intervals import mean_interval, wilson
from routeq.judges import JudgeReplyError
from routeq.judges.pairwise import pairwise_messages, parse_pairwise_reply, shadow_first
from routeq.policies import shadow_sampled, shadow_tier
from routeq.queue.publisher import Publisher
from routeq.records import HopKind, NextHop


def settings(tier: str) -> Settings:
    return Settings(shadow={"enabled": True, "tier": tier})


@pytest.mark.parametrize(
    ("target", "answered_on", "shadow_on"),
    [
        ("next", "cheap", "mid"),
        ("next", "mid", "frontier"),
        ("next", "frontier", None),  # nothing above the top
        ("top", "cheap", "frontier"),
        ("top", "frontier", None),
        ("mid", "cheap", "mid"),
        ("mid", "mid", None),  # a shadow on the same tier measures nothing
        ("mid", "frontier", None),  # nor one on a cheaper tier
        ("top", None, None),  # an answer of no tier (a split document's) is not shadowed
        ("top", "retired", None),
    ],
)
def test_a_shadow_runs_on_a_tier_above_the_answer(
    target: str, answered_on: str | None, shadow_on: str | None
) -> None:
    assert shadow_tier(settings(target), answered_on) == shadow_on


def test_an_unknown_shadow_tier_is_refused_at_load_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"shadow.tier .*'biggest'.*cheap, mid, frontier"):
        settings("biggest")


def test_the_sample_is_the_configured_share_and_the_same_for_the_same_query() -> None:
    ids = [uuid.uuid4() for _ in range(20_000)]
    sampled = [i for i in ids if shadow_sampled(i, 0.05)]
    assert len(sampled) / len(ids) == pytest.approx(0.05, abs=0.006)
    assert all(shadow_sampled(i, 0.05) for i in sampled)  # decided by the id alone
    assert not any(shadow_sampled(i, 0.0) for i in ids[:100])
    assert all(shadow_sampled(i, 1.0) for i in ids[:100])
    # the order the pairwise judge sees is balanced, and independent of the sample
    firsts = [shadow_first(i) for i in sampled]
    assert sum(firsts) / len(firsts) == pytest.approx(0.5, abs=0.08)


@pytest.mark.parametrize("shown_first", [True, False])
def test_the_pairwise_verdict_is_mapped_back_whichever_answer_was_shown_first(
    shown_first: bool,
) -> None:
    messages = pairwise_messages(
        "Q?", "kept answer", "shadow answer", shadow_shown_first=shown_first
    )
    prompt = messages[-1]["content"]
    first, second = (
        ("shadow answer", "kept answer") if shown_first else ("kept answer", "shadow answer")
    )
    assert prompt.index(first) < prompt.index(second)
    shadow_letter, kept_letter = ("A", "B") if shown_first else ("B", "A")
    parse = parse_pairwise_reply
    assert parse(f'{{"better": "{shadow_letter}"}}', shadow_shown_first=shown_first) == "shadow"
    assert parse(f"better: {kept_letter}, it is", shadow_shown_first=shown_first) == "original"
    assert (
        parse('```json\n{"better": "tie", "reason": "same"}\n```', shadow_shown_first=shown_first)
        == "tie"
    )


@pytest.mark.parametrize("reply", ["I cannot decide", '{"better": "C"}', "better: A ... better: B"])
def test_a_pairwise_reply_naming_no_single_choice_is_an_error(reply: str) -> None:
    with pytest.raises(JudgeReplyError):
        parse_pairwise_reply(reply, shadow_shown_first=True)


def test_intervals_hold_the_value_and_narrow_as_the_sample_grows() -> None:
    small, large = wilson(9, 10), wilson(900, 1000)
    assert small is not None and large is not None
    assert small.low < 0.9 < small.high <= 1.0 and large.low < 0.9 < large.high
    assert large.high - large.low < small.high - small.low
    perfect = wilson(12, 12)
    assert perfect is not None and perfect.value == 1.0 and perfect.high == 1.0 < perfect.low + 0.3
    assert wilson(0, 0) is None
    # every share of every small sample lies inside its own interval, 0 and 1 included
    for n in range(1, 60):
        for successes in range(n + 1):
            found = wilson(successes, n)
            assert found is not None and 0.0 <= found.low <= found.value <= found.high <= 1.0
    # a mean from its sums: values 0.1, 0.3, 0.2 -> 0.2 with a symmetric interval
    mean = mean_interval(0.6, 0.01 + 0.09 + 0.04, 3)
    assert mean is not None and mean.value == pytest.approx(0.2)
    assert mean.high - 0.2 == pytest.approx(0.2 - mean.low) and mean.low < 0.2 < mean.high
    one = mean_interval(0.4, 0.16, 1)
    assert one is not None and (one.low, one.high) == (-1.0, 1.0)


class Recording:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append({"name": name, **options})


def test_shadow_hops_publish_at_the_shadow_priority_and_others_at_the_default() -> None:
    app = Recording()
    publisher = Publisher(app, Settings(shadow={"enabled": True, "priority": 7}))  # type: ignore[arg-type]
    query = uuid.uuid4()
    publisher.publish(NextHop(query, 2, HopKind.CALL, "mid", "m", background=True))
    publisher.publish(NextHop(query, 2, HopKind.CALL, "mid", "m"))
    assert [m["priority"] for m in app.sent] == [7, None]
    assert {m["queue"] for m in app.sent} == {"tier.mid"}
