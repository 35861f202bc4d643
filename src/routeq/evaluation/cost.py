"""What answering an outcome file's prompts costs at the configured tiers' prices. Pure.

A quality curve says how good a router is at each share of strong-model calls; what a user
decides on is the money. Each example is priced twice, as if the weak model answered it and as
if the strong one did, so that the curve can add up the cost of exactly the prompts a router
sends to each side (``routeq.evaluation.curve``).

One answer costs

    input tokens of the prompt x the tier's input price
    + output tokens of that model's stored response x the tier's output price

with tokens counted by routeq's offline cl100k tokenizer (``routeq.tokens.count_tokens``) and
the product rounded as the ledger rounds (``routeq.pricing.call_cost``). Two estimates are
built in, and docs/evaluation.md states them:

- The prompt is counted alone: no system prompt and no chat framing, which an outcome file
  does not record. They add the same few tokens to every call of a tier.
- A response that is missing or empty (MMLU's outcomes keep only the graded letter, not the
  text) counts as one output token: a model call returns at least one token, and that letter
  is one.

The outcome file's models are priced as tiers chosen by name, by default the first tier of the
config (the ladder is listed cheapest first) for the weak model and the last (the top tier) for
the strong one: a router is measured at the prices it would be deployed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from routeq.config import ModelEndpoint, TierConfig
from routeq.errors import UsageError
from routeq.evaluation.outcomes import Example
from routeq.pricing import call_cost
from routeq.tokens import count_tokens

EMPTY_RESPONSE_TOKENS = 1
"""Output tokens charged for a missing or empty stored response (see the module's doc)."""


@dataclass(frozen=True)
class ExampleCost:
    """USD for answering one example on the weak model, and on the strong model."""

    weak: Decimal
    strong: Decimal
    # What sending it straight to the strong model costs, when ``strong`` is more (a cascade
    # pays the weak call first): the baseline of the saving.
    strong_alone: Decimal | None = None


@dataclass(frozen=True)
class TierPrices:
    """The tiers whose prices the weak and the strong model are charged at."""

    weak: TierConfig
    strong: TierConfig


def output_tokens(response: str | None) -> int:
    """Output tokens of a stored response; a missing or empty one counts as one token."""
    return max(EMPTY_RESPONSE_TOKENS, count_tokens(response or ""))


def answer_cost(prompt_tokens: int, response: str | None, prices: ModelEndpoint) -> Decimal:
    """USD for one answer: the prompt's tokens in, the response's tokens out."""
    return call_cost(prices, prompt_tokens, output_tokens(response))


def example_costs(
    examples: Iterable[Example], weak: str, strong: str, prices: TierPrices
) -> dict[str, ExampleCost]:
    """Each example's cost on the ``weak`` and on the ``strong`` model, keyed by its id.

    Every example needs an outcome of both models (``observed_pairs`` keeps those): the output
    side of the price is that model's own stored response.
    """
    costs: dict[str, ExampleCost] = {}
    for example in examples:
        prompt_tokens = count_tokens(example.prompt)
        costs[example.id] = ExampleCost(
            weak=answer_cost(prompt_tokens, example.outcomes[weak].response, prices.weak),
            strong=answer_cost(prompt_tokens, example.outcomes[strong].response, prices.strong),
        )
    return costs


def tier_prices(
    tiers: Sequence[TierConfig], weak_tier: str | None = None, strong_tier: str | None = None
) -> TierPrices:
    """The tiers to price the weak and the strong model as: the named ones, else the first
    (cheapest) and the last (top) tier. An unknown name is a UsageError listing the known ones
    (not Settings.tier's ConfigError: the config is fine, the option is not)."""
    if not tiers:
        raise UsageError("the configuration has no tiers to take prices from")
    by_name: Mapping[str, TierConfig] = {tier.name: tier for tier in tiers}

    def pick(name: str | None, default: TierConfig, side: str) -> TierConfig:
        if name is None:
            return default
        if name not in by_name:
            raise UsageError(
                f"no tier named {name!r} to price the {side} model at; "
                f"known tiers: {', '.join(by_name)}"
            )
        return by_name[name]

    return TierPrices(
        weak=pick(weak_tier, tiers[0], "weak"), strong=pick(strong_tier, tiers[-1], "strong")
    )


def cascaded(costs: dict[str, ExampleCost]) -> dict[str, ExampleCost]:
    """The costs of a cascade: every query pays the weak call first, so one that escalates pays
    both. (A pre-router combined with a cascade sends some queries straight up, paying only the
    strong call: charging them both makes its cost an upper bound.)"""
    return {key: ExampleCost(c.weak, c.weak + c.strong, c.strong) for key, c in costs.items()}
