"""Unit tests for routeq.pricing.call_cost: exact Decimal arithmetic at the ledger's precision."""

from __future__ import annotations

from decimal import Decimal

import pytest

from routeq.config import ModelEndpoint, default_judge, default_tiers
from routeq.pricing import call_cost


def endpoint(input_price: str, output_price: str) -> ModelEndpoint:
    return ModelEndpoint(
        provider="openai",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        input_price_per_mtok=Decimal(input_price),
        output_price_per_mtok=Decimal(output_price),
    )


CHEAP = endpoint("0.15", "0.60")


def test_example_from_the_docs() -> None:
    cost = call_cost(CHEAP, 1000, 500)
    assert cost == Decimal("0.00045")
    assert isinstance(cost, Decimal)


def test_zero_tokens_cost_nothing() -> None:
    cost = call_cost(CHEAP, 0, 0)
    assert cost == 0
    assert cost == Decimal("0E-10")


def test_free_model() -> None:
    assert call_cost(endpoint("0", "0"), 123_456, 7_890) == 0


def test_result_is_quantized_to_ten_places() -> None:
    cost = call_cost(CHEAP, 1000, 500)
    assert cost.as_tuple().exponent == -10
    assert str(cost) == "0.0004500000"


@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "expected"),
    [
        (1_000_000, 0, "0.15"),
        (0, 1_000_000, "0.60"),
        (1_000_000, 1_000_000, "0.75"),
        (1, 0, "0.00000015"),
        (0, 1, "0.0000006"),
        (3, 7, "0.00000465"),
    ],
)
def test_exact_values(input_tokens: int, output_tokens: int, expected: str) -> None:
    assert call_cost(CHEAP, input_tokens, output_tokens) == Decimal(expected)


def test_input_and_output_priced_separately() -> None:
    ep = endpoint("5.00", "15.00")
    assert call_cost(ep, 2000, 0) == Decimal("0.01")
    assert call_cost(ep, 0, 2000) == Decimal("0.03")
    assert call_cost(ep, 2000, 2000) == Decimal("0.04")


def test_rounding_beyond_ten_places() -> None:
    # 1 token at $0.00000000015/M is 1.5e-16 USD: below the ledger's precision.
    assert call_cost(endpoint("0.00000000015", "0"), 1, 0) == 0
    # 1 token at $0.000123456789/M is 1.23456789e-10: rounds half-even to 1e-10.
    assert call_cost(endpoint("0.000123456789", "0"), 1, 0) == Decimal("0.0000000001")
    # 1 token at $0.00025/M is exactly 2.5e-10: half-even rounds to 2e-10.
    assert call_cost(endpoint("0.00025", "0"), 1, 0) == Decimal("0.0000000002")


def test_no_float_error() -> None:
    # 0.1 + 0.2 style errors must not appear: the sum is exact in Decimal.
    ep = endpoint("0.1", "0.2")
    assert call_cost(ep, 1_000_000, 1_000_000) == Decimal("0.3")


def test_large_counts() -> None:
    ep = endpoint("15", "75")
    assert call_cost(ep, 10**9, 10**9) == Decimal("90000")


def test_sums_agree_with_total() -> None:
    parts = [call_cost(CHEAP, 1000, 500) for _ in range(1000)]
    assert sum(parts, Decimal(0)) == Decimal("0.45")


def test_default_tiers_prices() -> None:
    cheap, mid, frontier = default_tiers()
    assert call_cost(cheap, 1000, 500) == Decimal("0.00045")
    assert call_cost(mid, 1000, 500) == Decimal("0.003")
    assert call_cost(frontier, 1000, 500) == Decimal("0.0125")


def test_judge_endpoint_priced_too() -> None:
    judge = default_judge().model
    assert judge is not None
    assert call_cost(judge, 2000, 50) == Decimal("0.00033")


def test_float_price_from_toml_is_exact() -> None:
    # TOML floats arrive as Python floats; pydantic must not turn 0.15 into 0.1499999...
    ep = ModelEndpoint.model_validate(
        {
            "provider": "openai",
            "base_url": "http://h",
            "model": "m",
            "input_price_per_mtok": 0.15,
            "output_price_per_mtok": 0.6,
        }
    )
    assert ep.input_price_per_mtok == Decimal("0.15")
    assert call_cost(ep, 1000, 500) == Decimal("0.00045")
