"""Unit tests for routeq.policies: the starter router, configured rules and the tier ladder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tierspec import tier_dict

from routeq.config import RuleConfig, Settings, load_settings
from routeq.policies import (
    Decision,
    QueryView,
    RulesPolicy,
    build_policy,
    fit_to_context,
    middle_tier,
    starter_rules,
    tier_for_escalation,
)
from routeq.policies.ladder import fits
from routeq.policies.rules import CHIT_CHAT_CHARS, LONG_QUERY_CHARS, STARTER_KEYWORDS


def q(text: str, tokens: int | None = None, **kwargs: Any) -> QueryView:
    return QueryView(
        text=text, token_count=len(text.split()) if tokens is None else tokens, **kwargs
    )


# -- the starter router ----------------------------------------------------------------------------


class TestStarterRouter:
    @pytest.fixture
    def policy(self, settings: Settings) -> Any:
        return build_policy(settings)

    def test_policy_name(self, policy: Any) -> None:
        assert policy.name == "rules"
        assert isinstance(policy, RulesPolicy)

    def test_code_goes_to_frontier(self, policy: Any) -> None:
        decision = policy.decide(q("Write Python code to sort a list"))
        assert decision.tier == "frontier"
        assert decision.rule == "code-debug-proof"
        assert "'code'" in decision.reason
        assert "code-debug-proof" in decision.reason

    def test_why_doesnt_goes_to_frontier(self, policy: Any) -> None:
        decision = policy.decide(q("why doesn't this loop stop?"))
        assert decision.tier == "frontier"
        assert decision.rule == "code-debug-proof"
        assert "why doesn't" in decision.reason

    def test_prove_goes_to_frontier(self, policy: Any) -> None:
        decision = policy.decide(q("prove that the square root of two is irrational"))
        assert decision.tier == "frontier"
        assert decision.rule == "code-debug-proof"
        assert "'prove'" in decision.reason

    @pytest.mark.parametrize(
        "text",
        ["Can you DEBUG my script", "Give me a proof.", "Debugging tips, please", "CODE review"],
    )
    def test_keywords_case_insensitive(self, policy: Any, text: str) -> None:
        assert policy.decide(q(text)).rule == "code-debug-proof"

    def test_keyword_reported_lower_case(self, policy: Any) -> None:
        assert "keyword 'debug'" in policy.decide(q("DEBUG this")).reason

    @pytest.mark.parametrize(
        "text", ["decode this base64", "encoded", "codec", "proofread my essay", "reprove"]
    )
    def test_keyword_needs_word_boundary(self, policy: Any, text: str) -> None:
        decision = policy.decide(q(text))
        assert decision.rule != "code-debug-proof"
        assert decision.tier != "frontier"

    def test_decode_base64_is_chit_chat(self, policy: Any) -> None:
        decision = policy.decide(q("decode this base64"))
        assert decision.tier == "cheap"
        assert decision.rule == "chit-chat"

    def test_keyword_next_to_punctuation(self, policy: Any) -> None:
        assert policy.decide(q("(code)")).rule == "code-debug-proof"
        assert policy.decide(q("code?")).rule == "code-debug-proof"

    def test_long_query_goes_to_frontier(self, policy: Any) -> None:
        text = "lorem ipsum " * 90  # 1080 chars, no keywords
        assert len(text) > LONG_QUERY_CHARS
        decision = policy.decide(q(text))
        assert decision.tier == "frontier"
        assert decision.rule == "long-query"
        assert f"{len(text)} chars >= {LONG_QUERY_CHARS + 1}" in decision.reason

    def test_long_query_boundary(self, policy: Any) -> None:
        at_limit = "a" * LONG_QUERY_CHARS
        over = "a" * (LONG_QUERY_CHARS + 1)
        assert policy.decide(q(at_limit)).tier == "mid"
        assert policy.decide(q(over)).rule == "long-query"

    def test_hello_is_chit_chat(self, policy: Any) -> None:
        decision = policy.decide(q("hello there"))
        assert decision.tier == "cheap"
        assert decision.rule == "chit-chat"
        assert "11 chars <= 49" in decision.reason
        assert "none of '?:;'" in decision.reason

    @pytest.mark.parametrize("text", ["hi: there", "what?", "a; b"])
    def test_forbidden_chars_fall_to_default(self, policy: Any, text: str) -> None:
        decision = policy.decide(q(text))
        assert decision.tier == "mid"
        assert decision.rule is None
        assert decision.reason == "no rule matched: default tier"

    def test_chit_chat_boundary(self, policy: Any) -> None:
        below = "x" * (CHIT_CHAT_CHARS - 1)
        at = "x" * CHIT_CHAT_CHARS
        assert policy.decide(q(below)).tier == "cheap"
        assert policy.decide(q(at)).tier == "mid"

    def test_sixty_char_sentence_goes_to_mid(self, policy: Any) -> None:
        text = "Tell me about the history of the city of Lyon in France ok."
        text = text[:60].ljust(60, ".")
        assert len(text) == 60
        decision = policy.decide(q(text))
        assert decision.tier == "mid"
        assert decision.rule is None
        assert decision.reason == "no rule matched: default tier"

    def test_keyword_rule_wins_over_chit_chat(self, policy: Any) -> None:
        # Short and punctuation-free, so chit-chat would match too: the earlier rule wins.
        assert policy.decide(q("debug")).tier == "frontier"

    def test_decision_shape(self, policy: Any) -> None:
        decision = policy.decide(q("hello"))
        assert isinstance(decision, Decision)
        assert decision.score is None

    def test_configured_default_tier(self, clean_env: Path) -> None:
        policy = build_policy(load_settings(routing={"default_tier": "cheap"}))
        assert policy.decide(q("what?")).tier == "cheap"

    def test_configured_rules_replace_starter_rules(self, clean_env: Path) -> None:
        settings = load_settings(routing={"rules": [{"name": "all", "tier": "cheap"}]})
        decision = build_policy(settings).decide(q("Write Python code"))
        assert decision.tier == "cheap"
        assert decision.rule == "all"
        assert decision.reason == "rule 'all': always"

    def test_empty_rule_list_means_default_only(self, clean_env: Path) -> None:
        policy = build_policy(load_settings(routing={"rules": []}))
        assert policy.decide(q("Write Python code")).tier == "mid"

    def test_starter_rules_follow_custom_ladder(self, clean_env: Path) -> None:
        settings = load_settings(
            tiers=[
                tier_dict("a", 1000),
                tier_dict("b", 2000),
                tier_dict("c", 3000),
                tier_dict("d", 4000),
            ]
        )
        policy = build_policy(settings)
        assert policy.decide(q("debug it")).tier == "d"
        assert policy.decide(q("hello")).tier == "a"
        assert policy.decide(q("what?")).tier == "c"  # middle of four is index 2


class TestStarterRulesHelpers:
    def test_starter_rules_structure(self) -> None:
        rules = starter_rules(["s", "m", "l"])
        assert [r.name for r in rules] == [
            "summaries-start-cheap",
            "code-debug-proof",
            "long-query",
            "chit-chat",
        ]
        assert [r.tier for r in rules] == ["s", "l", "l", "s"]
        assert rules[0].task == "summarize"
        assert tuple(rules[1].keywords) == STARTER_KEYWORDS
        assert rules[2].min_chars == LONG_QUERY_CHARS + 1
        assert rules[3].max_chars == CHIT_CHAT_CHARS - 1
        assert rules[3].forbid_chars == "?:;"

    def test_a_long_document_to_summarise_starts_cheap_but_a_long_question_does_not(self) -> None:
        policy = build_policy(Settings(tiers=[tier_dict("s", 1000), tier_dict("l", 9000)]))
        long_text = "The quarterly report covers revenue and risks. " * 40
        summary = policy.decide(QueryView(long_text, 400, task="summarize"))
        question = policy.decide(QueryView(long_text, 400))
        assert (summary.tier, summary.rule) == ("s", "summaries-start-cheap")
        assert (question.tier, question.rule) == ("l", "long-query")

    def test_a_configured_rule_can_route_long_documents_by_token_count(self) -> None:
        settings = Settings(
            tiers=[tier_dict("s", 1000), tier_dict("l", 9000)],
            routing={
                "rules": [
                    {"name": "long-docs", "tier": "l", "task": "summarize", "min_tokens": 800},
                    {"name": "docs", "tier": "s", "task": "summarize"},
                ]
            },
        )
        policy = build_policy(settings)
        assert policy.decide(QueryView("x", 900, task="summarize")).tier == "l"
        assert policy.decide(QueryView("x", 100, task="summarize")).tier == "s"
        assert policy.decide(QueryView("x", 900)).rule is None  # not a summary: default tier

    @pytest.mark.parametrize(
        ("names", "middle"),
        [(["a"], "a"), (["a", "b"], "b"), (["a", "b", "c"], "b"), (["a", "b", "c", "d"], "c")],
    )
    def test_middle_tier(self, names: list[str], middle: str) -> None:
        assert middle_tier(names) == middle


# -- configured rules ------------------------------------------------------------------------------


def policy_of(*rules: dict[str, Any], default: str = "mid") -> RulesPolicy:
    return RulesPolicy([RuleConfig(**rule) for rule in rules], default)


class TestRulesPolicy:
    def test_no_rules_uses_default(self) -> None:
        decision = RulesPolicy([], "cheap").decide(q("anything"))
        assert (decision.tier, decision.reason) == ("cheap", "no rule matched: default tier")
        assert decision.policy == "rules" and decision.version  # recorded on the route hop

    def test_rule_without_conditions_always_matches(self) -> None:
        decision = policy_of({"name": "catch-all", "tier": "frontier"}).decide(q("x"))
        assert decision.tier == "frontier"
        assert decision.rule == "catch-all"
        assert decision.reason == "rule 'catch-all': always"

    def test_keywords(self) -> None:
        policy = policy_of({"name": "sql", "tier": "frontier", "keywords": ["SQL", "join"]})
        decision = policy.decide(q("write an sql query"))
        assert decision.tier == "frontier"
        assert decision.reason == "rule 'sql': keyword 'sql'"
        assert policy.decide(q("a LEFT JOIN b")).tier == "frontier"
        assert policy.decide(q("joined tables")).tier == "mid"

    def test_keywords_with_regex_metacharacters_are_literal(self) -> None:
        policy = policy_of({"name": "cpp", "tier": "frontier", "keywords": ["c++", "a.b"]})
        assert policy.decide(q("help with c++ templates")).tier == "frontier"
        assert policy.decide(q("axb")).tier == "mid"
        assert policy.decide(q("field a.b")).tier == "frontier"

    def test_multi_word_keyword(self) -> None:
        policy = policy_of({"name": "w", "tier": "frontier", "keywords": ["why doesn't"]})
        assert policy.decide(q("Why doesn't it work")).tier == "frontier"
        assert policy.decide(q("why does it work")).tier == "mid"

    def test_regex(self) -> None:
        policy = policy_of({"name": "ticket", "tier": "cheap", "regex": [r"\bJIRA-\d+", r"^ping$"]})
        decision = policy.decide(q("status of JIRA-123"))
        assert decision.tier == "cheap"
        assert decision.reason == "rule 'ticket': regex '\\\\bJIRA-\\\\d+'"
        assert policy.decide(q("ping")).reason == "rule 'ticket': regex '^ping$'"
        assert policy.decide(q("jira-123")).tier == "mid"  # regex is case-sensitive

    def test_min_chars(self) -> None:
        policy = policy_of({"name": "long", "tier": "frontier", "min_chars": 10})
        assert policy.decide(q("x" * 9)).tier == "mid"
        decision = policy.decide(q("x" * 10))
        assert decision.tier == "frontier"
        assert decision.reason == "rule 'long': 10 chars >= 10"

    def test_max_chars(self) -> None:
        policy = policy_of({"name": "short", "tier": "cheap", "max_chars": 5})
        assert policy.decide(q("x" * 5)).reason == "rule 'short': 5 chars <= 5"
        assert policy.decide(q("x" * 6)).tier == "mid"

    def test_min_tokens(self) -> None:
        policy = policy_of({"name": "big", "tier": "frontier", "min_tokens": 100})
        assert policy.decide(q("short", tokens=99)).tier == "mid"
        decision = policy.decide(q("short", tokens=100))
        assert decision.tier == "frontier"
        assert decision.reason == "rule 'big': 100 tokens >= 100"

    def test_max_tokens(self) -> None:
        policy = policy_of({"name": "small", "tier": "cheap", "max_tokens": 3})
        assert policy.decide(q("a long text with many characters", tokens=3)).tier == "cheap"
        assert policy.decide(q("a", tokens=4)).tier == "mid"

    def test_tokens_come_from_token_count_not_text(self) -> None:
        policy = policy_of({"name": "big", "tier": "frontier", "min_tokens": 5})
        assert policy.decide(q("one", tokens=5)).tier == "frontier"
        assert policy.decide(q("one two three four five six", tokens=1)).tier == "mid"

    def test_forbid_chars(self) -> None:
        policy = policy_of({"name": "plain", "tier": "cheap", "forbid_chars": "$#"})
        assert policy.decide(q("hello")).tier == "cheap"
        assert policy.decide(q("costs $5")).tier == "mid"
        assert policy.decide(q("#tag")).tier == "mid"

    def test_metadata_match(self) -> None:
        policy = policy_of({"name": "pro", "tier": "frontier", "metadata": {"plan": "pro"}})
        decision = policy.decide(q("hi", metadata={"plan": "pro", "other": "x"}))
        assert decision.tier == "frontier"
        assert decision.reason == "rule 'pro': metadata plan=pro"
        assert policy.decide(q("hi", metadata={"plan": "free"})).tier == "mid"
        assert policy.decide(q("hi")).tier == "mid"

    def test_metadata_compared_as_strings(self) -> None:
        policy = policy_of({"name": "v", "tier": "frontier", "metadata": {"version": "2"}})
        assert policy.decide(q("hi", metadata={"version": 2})).tier == "frontier"
        assert policy.decide(q("hi", metadata={"version": "2"})).tier == "frontier"
        assert policy.decide(q("hi", metadata={"version": 3})).tier == "mid"

    def test_all_metadata_keys_must_match(self) -> None:
        policy = policy_of(
            {"name": "m", "tier": "frontier", "metadata": {"plan": "pro", "region": "eu"}}
        )
        assert policy.decide(q("x", metadata={"plan": "pro", "region": "eu"})).tier == "frontier"
        assert policy.decide(q("x", metadata={"plan": "pro", "region": "us"})).tier == "mid"
        assert policy.decide(q("x", metadata={"plan": "pro"})).tier == "mid"

    def test_user_match(self) -> None:
        policy = policy_of({"name": "vip", "tier": "frontier", "user": "alice"})
        decision = policy.decide(q("hi", user="alice"))
        assert decision.tier == "frontier"
        assert decision.reason == "rule 'vip': user alice"
        assert policy.decide(q("hi", user="bob")).tier == "mid"
        assert policy.decide(q("hi")).tier == "mid"

    def test_all_conditions_must_hold(self) -> None:
        policy = policy_of(
            {
                "name": "combo",
                "tier": "frontier",
                "keywords": ["invoice"],
                "regex": [r"\d{4}"],
                "min_chars": 10,
                "max_chars": 100,
                "min_tokens": 2,
                "max_tokens": 50,
                "metadata": {"team": "billing"},
                "user": "carol",
            }
        )
        good: dict[str, Any] = {
            "text": "invoice 2024 please",
            "tokens": 3,
            "metadata": {"team": "billing"},
            "user": "carol",
        }

        def decide(**changes: Any) -> Decision:
            args = {**good, **changes}
            return policy.decide(
                q(args["text"], tokens=args["tokens"], metadata=args["metadata"], user=args["user"])
            )

        decision = decide()
        assert decision.tier == "frontier"
        assert decision.reason == (
            "rule 'combo': keyword 'invoice', regex '\\\\d{4}', 19 chars >= 10, 19 chars <= 100, "
            "3 tokens >= 2, 3 tokens <= 50, metadata team=billing, user carol"
        )
        # Break each condition in turn: the rule must no longer match.
        assert decide(text="receipt 2024 please").tier == "mid"
        assert decide(text="invoice twenty please").tier == "mid"
        assert decide(text="invoice 24").tier == "mid"
        assert decide(text="invoice 2024 " + "x" * 100).tier == "mid"
        assert decide(tokens=1).tier == "mid"
        assert decide(tokens=51).tier == "mid"
        assert decide(metadata={"team": "sales"}).tier == "mid"
        assert decide(user="dave").tier == "mid"

    def test_first_match_wins(self) -> None:
        policy = policy_of(
            {"name": "first", "tier": "cheap", "keywords": ["hello"]},
            {"name": "second", "tier": "frontier", "keywords": ["hello"]},
            {"name": "third", "tier": "mid"},
        )
        decision = policy.decide(q("hello world"))
        assert decision.tier == "cheap"
        assert decision.rule == "first"
        fallthrough = policy.decide(q("goodbye"))
        assert fallthrough.rule == "third"
        assert fallthrough.tier == "mid"

    def test_later_rule_applies_when_earlier_fails(self) -> None:
        policy = policy_of(
            {"name": "a", "tier": "cheap", "keywords": ["alpha"]},
            {"name": "b", "tier": "frontier", "keywords": ["beta"]},
            default="mid",
        )
        assert policy.decide(q("beta")).rule == "b"
        assert policy.decide(q("gamma")).reason == "no rule matched: default tier"

    def test_policy_is_pure(self) -> None:
        policy = policy_of({"name": "k", "tier": "frontier", "keywords": ["x"]})
        query = q("x marks the spot")
        assert policy.decide(query) == policy.decide(query)


# -- the ladder ------------------------------------------------------------------------------------


class TestLadder:
    @pytest.fixture
    def ladder(self, clean_env: Path) -> Settings:
        return load_settings(
            tiers=[
                # exact arithmetic here; the margin has its own test below
                tier_dict("small", 1000, max_output_tokens=200, token_margin=0),
                tier_dict("medium", 4000, max_output_tokens=1000, token_margin=0),
                tier_dict("large", 10_000, max_output_tokens=2000, token_margin=0),
            ]
        )

    def test_fits_counts_output_tokens(self, ladder: Settings) -> None:
        small = ladder.tier("small")
        assert fits(small, 800)  # 800 + 200 == 1000
        assert not fits(small, 801)

    def test_fits_keeps_the_tier_token_margin(self, clean_env: Path) -> None:
        # a model whose tokenizer counts 20% more than ours: 700 of our tokens are its 840
        settings = load_settings(tiers=[tier_dict("small", 1000, max_output_tokens=160)])
        small = settings.tier("small")
        assert small.token_margin == 0.2
        assert fits(small, 700)  # 840 + 160 == 1000
        assert not fits(small, 701)

    def test_fit_to_context_keeps_tier_that_fits(self, ladder: Settings) -> None:
        tier = fit_to_context(ladder, "small", 800)
        assert tier is not None
        assert tier.name == "small"

    def test_fit_to_context_moves_up(self, ladder: Settings) -> None:
        tier = fit_to_context(ladder, "small", 801)
        assert tier is not None
        assert tier.name == "medium"
        tier = fit_to_context(ladder, "small", 3001)
        assert tier is not None
        assert tier.name == "large"

    def test_fit_to_context_never_moves_down(self, ladder: Settings) -> None:
        tier = fit_to_context(ladder, "medium", 10)
        assert tier is not None
        assert tier.name == "medium"

    def test_fit_to_context_none_when_nothing_fits(self, ladder: Settings) -> None:
        assert fit_to_context(ladder, "small", 8001) is None
        assert fit_to_context(ladder, "large", 8001) is None
        tier = fit_to_context(ladder, "large", 8000)
        assert tier is not None
        assert tier.name == "large"

    def test_default_ladder(self, settings: Settings) -> None:
        tier = fit_to_context(settings, "cheap", 16_000 - 1024 + 1)
        assert tier is not None
        assert tier.name == "mid"

    def test_escalation_next_tier(self, ladder: Settings) -> None:
        tier = tier_for_escalation(ladder, "small", 10)
        assert tier is not None
        assert tier.name == "medium"
        tier = tier_for_escalation(ladder, "medium", 10)
        assert tier is not None
        assert tier.name == "large"

    def test_escalation_none_at_top(self, ladder: Settings) -> None:
        assert tier_for_escalation(ladder, "large", 10) is None

    def test_escalation_skips_tier_too_small(self, ladder: Settings) -> None:
        tier = tier_for_escalation(ladder, "small", 3500)
        assert tier is not None
        assert tier.name == "large"

    def test_escalation_none_when_nothing_above_fits(self, ladder: Settings) -> None:
        assert tier_for_escalation(ladder, "small", 9000) is None


@pytest.mark.parametrize(
    ("answered_on", "rerun_on"),
    [("cheap", "mid"), ("mid", "frontier"), ("frontier", "frontier"), (None, "frontier")],
)
def test_a_rerun_after_a_thumbs_down_goes_one_tier_above_the_answer(
    answered_on: str | None, rerun_on: str
) -> None:
    from routeq.policies import rerun_tier

    assert rerun_tier(Settings(), answered_on) == rerun_on


def test_a_rerun_of_a_tier_no_longer_on_the_ladder_goes_to_the_top() -> None:
    from routeq.policies import rerun_tier

    assert rerun_tier(Settings(), "retired-tier") == "frontier"
