"""The provider guard's rules (``worker.guard.EndpointState``), on a clock the test moves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from routeq.config import ModelEndpoint, ProtectionConfig
from routeq.worker.guard import ProcessGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def endpoint(**limits: int) -> ModelEndpoint:
    return ModelEndpoint(
        provider="openai",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        input_price_per_mtok=Decimal(1),
        output_price_per_mtok=Decimal(1),
        timeout_s=2.0,
        **limits,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def guard(clock: Clock, **protection: float) -> ProcessGuard:
    return ProcessGuard(ProtectionConfig(**protection), clock=clock)  # type: ignore[arg-type]


def test_an_endpoint_without_limits_always_admits(clock: Clock) -> None:
    g, e = guard(clock), endpoint()
    assert all(g.admit(e, 10_000).granted for _ in range(1000))


def test_requests_per_minute_are_paced_evenly(clock: Clock) -> None:
    g, e = guard(clock), endpoint(requests_per_minute=600)  # one every 100 ms
    assert g.admit(e, 1).granted and g.admit(e, 1).granted  # an idle meter lets two go
    refused = g.admit(e, 1)
    assert refused.why == "rate" and refused.wait_s == pytest.approx(0.1)
    # Over a simulated minute, polled every 7 ms: the rate, two a time at most.
    passed: list[float] = []
    for _ in range(60_000 // 7):
        clock.now += 0.007
        if g.admit(e, 1).granted:
            passed.append(clock.now)
    assert 598 <= len(passed) <= 601
    for i in range(len(passed) - 2):  # any 3 consecutive span at least one interval
        assert passed[i + 2] - passed[i] >= 0.1 - 1e-6


def test_tokens_per_minute_meter_the_prompt_and_output_allowance(clock: Clock) -> None:
    g, e = guard(clock), endpoint(tokens_per_minute=60_000)  # 1,000 tokens a second
    assert g.admit(e, 600).granted
    refused = g.admit(e, 700)  # the meter is 0.6 s ahead; this one may run it 0.7 s ahead
    assert refused.granted
    refused = g.admit(e, 100)
    assert refused.why == "rate" and refused.wait_s == pytest.approx(1.2)
    clock.now += 1.2
    assert g.admit(e, 100).granted
    # One request bigger than a second's tokens still passes when the meter is idle.
    clock.now += 10
    assert g.admit(e, 5_000).granted
    assert g.admit(e, 10).wait_s == pytest.approx(5.0 - 0.01)


def test_a_peek_takes_nothing(clock: Clock) -> None:
    g, e = guard(clock), endpoint(requests_per_minute=60)
    assert all(g.admit(e, 1, take=False).granted for _ in range(100))
    assert g.admit(e, 1).granted and g.admit(e, 1).granted
    assert not g.admit(e, 1, take=False).granted


def test_retry_after_blocks_the_endpoint_for_everyone(clock: Clock) -> None:
    g, e = guard(clock), endpoint()
    g.report(e, "limited", 2.0)
    blocked = g.admit(e, 1)
    assert (blocked.granted, blocked.why) == (False, "retry-after")
    assert blocked.wait_s == pytest.approx(2.0)
    g.report(e, "limited", 0.5)  # a shorter hint does not shorten the block
    clock.now += 1.9
    assert not g.admit(e, 1).granted
    clock.now += 0.2
    assert g.admit(e, 1).granted
    g.report(e, "limited")  # without a hint: a second
    assert g.admit(e, 1).wait_s == pytest.approx(1.0)


def test_the_breaker_opens_after_consecutive_failures_and_probes_once(clock: Clock) -> None:
    g, e = guard(clock, breaker_failures=3, breaker_open_s=10.0), endpoint()
    for _ in range(2):
        g.report(e, "failed")
    g.report(e, "ok")  # a success in between resets the count
    for _ in range(2):
        g.report(e, "failed")
    assert g.admit(e, 1).granted
    g.report(e, "failed")
    refused = g.admit(e, 1)
    assert (refused.why, refused.wait_s) == ("breaker", pytest.approx(10.0))
    clock.now += 10.1  # half-open: one probe, the others wait for it
    assert g.admit(e, 1).granted
    assert g.admit(e, 1).why == "breaker"
    g.report(e, "failed")  # the probe failed: open again, for the full time
    assert g.admit(e, 1).wait_s == pytest.approx(10.0)
    clock.now += 10.1
    assert g.admit(e, 1).granted
    g.report(e, "ok")  # the probe answered: closed
    assert all(g.admit(e, 1).granted for _ in range(5))


def test_a_probe_that_never_reports_frees_the_endpoint_after_its_lease(clock: Clock) -> None:
    g, e = guard(clock, breaker_failures=1, breaker_open_s=1.0), endpoint()
    g.report(e, "failed")
    clock.now += 1.1
    assert g.admit(e, 1).granted  # the probe's worker dies here
    assert not g.admit(e, 1).granted
    clock.now += e.timeout_s + 5.1
    assert g.admit(e, 1).granted


def test_endpoints_are_guarded_apart(clock: Clock) -> None:
    g = guard(clock, breaker_failures=1)
    down, other = endpoint(), endpoint().model_copy(update={"model": "other"})
    g.report(down, "failed")
    assert not g.admit(down, 1).granted
    assert g.admit(other, 1).granted
