"""Which budgets a query's calls are charged to (``routeq.budgets``), and what a call reserves."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from routeq.budgets import charges, needs_batch, on_exceed, reservation
from routeq.config import BudgetConfig, ModelEndpoint, SpendConfig
from routeq.records import QueryInput, QueryRole, QueryStatus


def query(**fields: object) -> QueryInput:
    base: dict[str, object] = {
        "id": uuid.uuid4(),
        "text": "q",
        "input_tokens": 1,
        "metadata": {},
        "user": None,
        "status": QueryStatus.RUNNING,
    }
    return QueryInput(**{**base, **fields})  # type: ignore[arg-type]


SPEND = SpendConfig(
    budgets=[
        BudgetConfig(name="users", scope="user", limit_usd=Decimal(1)),
        BudgetConfig(name="alice", scope="user", subject="alice", limit_usd=Decimal(5)),
        BudgetConfig(name="teams", scope="tag", tag="team", limit_usd=Decimal(10)),
        BudgetConfig(name="keys", scope="api_key", limit_usd=Decimal(2), period="month"),
        BudgetConfig(name="batches", scope="batch", limit_usd=Decimal(3), on_exceed="cheaper"),
    ]
)


def test_a_query_is_charged_to_every_budget_whose_scope_it_belongs_to() -> None:
    alice = query(user="alice", metadata={"team": "research"}, api_key_id="k1")
    found = {(c.budget, c.subject) for c in charges(SPEND, alice, batch_id="b-1")}
    assert found == {
        ("users", "alice"),
        ("alice", "alice"),
        ("teams", "research"),
        ("keys", "k1"),
        ("batches", "b-1"),
    }
    bob = query(user="bob", metadata={"team": {"nested": True}})
    assert {(c.budget, c.subject) for c in charges(SPEND, bob)} == {("users", "bob")}
    assert charges(SPEND, query()) == []


def test_shadows_are_the_operators_measurement_and_charged_to_no_one() -> None:
    assert charges(SPEND, query(user="alice", role=QueryRole.SHADOW)) == []


def test_needs_batch_and_what_a_refusal_does() -> None:
    assert needs_batch(SPEND) and not needs_batch(SpendConfig())
    assert on_exceed(SPEND, "batches") == "cheaper"
    assert on_exceed(SPEND, "users") == "fail"
    assert on_exceed(SPEND, "max_cost_per_query") == "fail"


def test_a_reservation_is_the_worst_case_with_a_prompt_margin() -> None:
    endpoint = ModelEndpoint(
        provider="openai",
        base_url="http://x/v1",
        model="m",
        input_price_per_mtok=Decimal(1),
        output_price_per_mtok=Decimal(10),
        max_output_tokens=100,
    )
    # 1,000 prompt tokens counted as 1,250, and the whole output allowance
    assert reservation(endpoint, 1000) == Decimal("0.00125") + Decimal("0.001")


def test_budget_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="'tag' names the metadata key"):
        BudgetConfig(name="t", scope="tag", limit_usd=Decimal(1))
    with pytest.raises(ValueError, match="'tag' names the metadata key"):
        BudgetConfig(name="u", scope="user", tag="team", limit_usd=Decimal(1))
    with pytest.raises(ValueError, match="repeated: dup"):
        SpendConfig(
            budgets=[
                BudgetConfig(name="dup", scope="user", limit_usd=Decimal(1)),
                BudgetConfig(name="dup", scope="batch", limit_usd=Decimal(1)),
            ]
        )
