"""A tier's fallback endpoints: their order, their part in the derived time limits, and their
keys checked like the tier's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from routeq.config import Settings, TierConfig, default_tiers


def fallback(model: str, price: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "model": model,
        "input_price_per_mtok": price,
        "output_price_per_mtok": price,
        "timeout_s": 10.0,
        **extra,
    }


def ladder(**frontier: Any) -> list[Any]:
    tiers = default_tiers()
    return [*tiers[:-1], TierConfig.model_validate({**tiers[-1].model_dump(), **frontier})]


def test_a_tier_tries_its_own_endpoint_first_or_the_cheapest_first() -> None:
    spares = [fallback("dear", "30"), fallback("cheap", "1")]
    ordered = Settings(tiers=ladder(fallbacks=spares))
    assert [e.model for e in ordered.top_tier.endpoints] == ["sim-large", "dear", "cheap"]
    by_price = Settings(tiers=ladder(fallbacks=spares, balance="price"))
    assert [e.model for e in by_price.top_tier.endpoints] == ["cheap", "sim-large", "dear"]


def test_fallbacks_lengthen_the_slowest_delivery_and_so_the_time_limits() -> None:
    plain = Settings().time_limits
    with_one = Settings(tiers=ladder(fallbacks=[fallback("spare", "1")])).time_limits
    # one more endpoint of 10 s: 4 attempts and 3 pauses of at most 60 s
    assert with_one.soft_s - plain.soft_s == 4 * 10 + 3 * 60


def test_a_fallback_key_is_checked_at_load_like_a_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARE_KEY", "sk-spare\n")
    with pytest.raises(ValueError, match=r"SPARE_KEY.*tier frontier fallback 1"):
        Settings(tiers=ladder(fallbacks=[fallback("spare", "1", api_key_env="SPARE_KEY")]))


def test_the_judge_may_wait_and_fallback_prices_are_their_own() -> None:
    settings = Settings(tiers=ladder(judge_fail_mode="wait", fallbacks=[fallback("spare", "2.5")]))
    assert settings.top_tier.judge_fail_mode == "wait"
    spare = settings.top_tier.endpoints[1]
    assert spare.input_price_per_mtok == Decimal("2.5") and spare.model == "spare"
