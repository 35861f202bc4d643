"""Privacy rules (``routeq.privacy``): what redaction replaces and keeps, and which mode a
query gets."""

from __future__ import annotations

import pytest

from routeq.config import PrivacyConfig, PrivacyTag
from routeq.privacy import mode_for, private_query, redact, redactor
from routeq.records import NewQuery
from routeq.tokens import count_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+work@example.co.uk today", "write to [email] today"),
        ("my key is sk-proj-abcdefghijklmnop1234", "my key is [key]"),
        ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "token [key]"),
        ("call +44 7911 123456 or 4111-1111-1111-1111", "call +[number] or [number]"),
        # Amounts, years and arithmetic stay: questions need them.
        ("If 12 apples cost $3.50 in 2024, what do 144 cost?", None),
        ("what is 123 * 4567?", None),
    ],
)
def test_the_built_in_patterns_replace_personal_data_and_keep_ordinary_numbers(
    text: str, expected: str | None
) -> None:
    assert redact(text, redactor(PrivacyConfig())) == (expected or text)


def test_configured_patterns_are_replaced_too_and_a_kind_can_be_left_out() -> None:
    config = PrivacyConfig(redact=["email"], patterns=[r"\bPRJ-\d+\b"])
    assert redact("PRJ-42 for a@b.io, account 12345678", redactor(config)) == (
        "[redacted] for [email], account 12345678"
    )


def test_a_pattern_that_matches_nothing_or_everything_is_refused() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        PrivacyConfig(patterns=["(unclosed"])
    with pytest.raises(ValueError, match="matches empty text"):
        PrivacyConfig(patterns=["x*"])


def test_the_mode_comes_from_the_first_matching_tag_else_the_deployment() -> None:
    config = PrivacyConfig(
        mode="redact",
        tags=[
            PrivacyTag(tag="tenant", value="bank", mode="none"),
            PrivacyTag(tag="tenant", value="lab", mode="full"),
        ],
    )
    assert mode_for(config, {"tenant": "bank"}) == "none"
    assert mode_for(config, {"tenant": "lab"}) == "full"
    assert mode_for(config, {"tenant": "shop"}) == "redact"
    assert mode_for(config, {}) == "redact"


def test_a_redacted_query_is_stored_redacted_with_its_tokens_counted_again() -> None:
    config = PrivacyConfig(mode="redact")
    text = "Email ops@example.com the invoice for account 99887766."
    item = NewQuery(text, count_tokens(text), messages=[{"role": "user", "content": text}])
    stored = private_query(config, item)
    assert stored.privacy == "redact"
    assert stored.text == "Email [email] the invoice for account [number]."
    assert stored.messages == [{"role": "user", "content": stored.text}]
    assert "example.com" not in repr(stored)


def test_a_query_kept_in_no_form_gets_no_cache_key_and_full_keeps_everything() -> None:
    item = NewQuery("summarise this", 3, cache_key="abc")
    erased = private_query(PrivacyConfig(mode="none"), item)
    assert (erased.privacy, erased.cache_key, erased.text) == ("none", None, "summarise this")
    assert private_query(PrivacyConfig(), item) is item


def test_patterns_with_groups_of_their_own_each_work() -> None:
    config = PrivacyConfig(
        redact=[], patterns=[r"(?P<id>ACCT)-\d+", r"(?P<id>REF)/\d+", r"(\w)\1{3}"]
    )
    assert redact("ACCT-12 REF/9 zzzz ok", redactor(config)) == (
        "[redacted] [redacted] [redacted] ok"
    )
