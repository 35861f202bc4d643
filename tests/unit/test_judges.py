"""Unit tests for routeq.judges: heuristic checks, the LLM judge's prompt/parser, next steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from tierspec import tier_dict

from routeq.config import ESCALATE_TOKEN, Settings, load_settings
from routeq.judges import (
    Accept,
    Escalate,
    Fail,
    JudgeError,
    JudgeReplyError,
    JudgeScore,
    Verdict,
    after_call_failure,
    after_verdict,
    asks_for_code,
    heuristic_failure,
    judge_messages,
    parse_judge_reply,
)

GOOD_ANSWER = "Paris is the capital of France."


# -- heuristics ------------------------------------------------------------------------------------


class TestHeuristicFailure:
    def test_good_answer_passes(self) -> None:
        assert heuristic_failure("What is the capital of France?", GOOD_ANSWER, "stop") is None

    def test_good_answer_without_finish_reason(self) -> None:
        assert heuristic_failure("What is the capital of France?", GOOD_ANSWER, None) is None

    @pytest.mark.parametrize("answer", [None, "", "   ", "\n\t \n"])
    def test_empty_answer(self, answer: str | None) -> None:
        assert heuristic_failure("q", answer, "stop") == "empty answer"

    def test_empty_checked_before_truncation(self) -> None:
        assert heuristic_failure("q", "", "length") == "empty answer"

    def test_truncated(self) -> None:
        assert heuristic_failure("q", GOOD_ANSWER, "length") == (
            "answer truncated (finish_reason=length)"
        )

    @pytest.mark.parametrize("finish_reason", ["stop", "end_turn", "tool_calls", None])
    def test_other_finish_reasons_pass(self, finish_reason: str | None) -> None:
        assert heuristic_failure("q", GOOD_ANSWER, finish_reason) is None

    @pytest.mark.parametrize(
        "answer", [ESCALATE_TOKEN, f"  {ESCALATE_TOKEN}\n", f"I think so. {ESCALATE_TOKEN}"]
    )
    def test_escalate_token(self, answer: str) -> None:
        reason = heuristic_failure("q", answer, "stop")
        assert reason == "model asked to escalate ([ESCALATE])"

    @pytest.mark.parametrize(
        "answer",
        [
            "I'm sorry, but I can't help with that.",
            "I'm sorry, but I cannot do that.",
            "Im sorry but I cant do this",
            "I can't help with that request.",
            "I cannot assist with this.",
            "I'm unable to help with that.",
            "I am sorry. I'm not able to assist you here.",
            "Unfortunately, I won't be able to help.",
            "i'm SORRY, BUT I CAN'T",
        ],
    )
    def test_refusals(self, answer: str) -> None:
        assert heuristic_failure("Tell me something", answer, "stop") == "model refused to answer"

    def test_refusal_only_checked_near_the_start(self) -> None:
        answer = "x" * 400 + " I'm sorry, but I can't help with that."
        assert heuristic_failure("q", answer, "stop") is None

    def test_refusal_with_typographic_apostrophes(self) -> None:
        answer = "I\u2019m sorry, but I can\u2019t help with that."
        assert heuristic_failure("Tell me something", answer, "stop") == "model refused to answer"

    @pytest.mark.parametrize(
        "question",
        [
            "Write a function that reverses a string",
            "Show me the code for bubble sort",
            "How do I read a file in Python?",
            "Implement quicksort",
        ],
    )
    def test_code_question_without_code_block(self, question: str) -> None:
        reason = heuristic_failure(question, "You loop over the items and compare them.", "stop")
        assert reason == "question asks for code but the answer has no code block"

    def test_code_question_with_code_block_passes(self) -> None:
        answer = "Here you go:\n```python\ndef rev(s):\n    return s[::-1]\n```"
        assert heuristic_failure("Write a function to reverse a string", answer, "stop") is None

    def test_non_code_question_needs_no_code_block(self) -> None:
        assert heuristic_failure("Tell me a joke", "Why did the chicken...", "stop") is None

    def test_order_truncation_before_escalate(self) -> None:
        reason = heuristic_failure("q", ESCALATE_TOKEN, "length")
        assert reason == "answer truncated (finish_reason=length)"

    def test_order_escalate_before_refusal(self) -> None:
        answer = f"I'm sorry, but I can't. {ESCALATE_TOKEN}"
        assert heuristic_failure("q", answer, "stop") == "model asked to escalate ([ESCALATE])"

    def test_order_refusal_before_code_block(self) -> None:
        answer = "I'm sorry, but I can't help with that."
        assert heuristic_failure("Write python code", answer, "stop") == "model refused to answer"


class TestAsksForCode:
    @pytest.mark.parametrize(
        "question",
        [
            "write a function",
            "Python: show me the CODE",
            "how would I do this in python",
            "give me a bash script",
            "a regex for emails",
            "write a SQL query for totals",
            "snippet please",
            "implementation of a heap",
            "write a program that prints",
            "do it in Rust",
        ],
    )
    def test_true(self, question: str) -> None:
        assert asks_for_code(question) is True

    @pytest.mark.parametrize(
        "question",
        [
            "What is the capital of France?",
            "decode this message",
            "explain photosynthesis",
            "is it in good shape?",
            "",
        ],
    )
    def test_false(self, question: str) -> None:
        assert asks_for_code(question) is False


# -- the LLM judge's prompt and reply --------------------------------------------------------------


class TestJudgeMessages:
    def test_contains_rubric_question_and_answer(self) -> None:
        messages = judge_messages("RUBRIC-TEXT 1-10", "What is 2+2?", "It is 4.")
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "RUBRIC-TEXT 1-10" in messages[0]["content"]
        assert "What is 2+2?" in messages[1]["content"]
        assert "It is 4." in messages[1]["content"]
        assert messages[1]["content"].index("What is 2+2?") < messages[1]["content"].index(
            "It is 4."
        )

    def test_default_rubric(self, settings: Settings) -> None:
        messages = judge_messages(settings.judge.rubric, "q", "a")
        assert settings.judge.rubric in messages[0]["content"]
        assert "JSON" in messages[0]["content"]

    def test_all_values_are_strings(self) -> None:
        for message in judge_messages("r", "q", "a"):
            assert set(message) == {"role", "content"}
            assert all(isinstance(v, str) for v in message.values())


class TestParseJudgeReply:
    def test_plain_json(self) -> None:
        assert parse_judge_reply('{"score": 8, "reason": "Correct and clear."}') == JudgeScore(
            score=8, reason="Correct and clear."
        )

    def test_json_in_prose(self) -> None:
        reply = 'Here is my verdict: {"score": 3, "reason": "wrong year"} Hope it helps.'
        assert parse_judge_reply(reply) == JudgeScore(score=3, reason="wrong year")

    def test_json_in_code_fence(self) -> None:
        reply = '```json\n{\n  "score": 9,\n  "reason": "  complete  "\n}\n```'
        assert parse_judge_reply(reply) == JudgeScore(score=9, reason="complete")

    def test_skips_non_json_braces(self) -> None:
        reply = 'The set {a, b} aside, {"score": 5, "reason": "partial"}'
        assert parse_judge_reply(reply) == JudgeScore(score=5, reason="partial")

    def test_skips_json_without_score(self) -> None:
        reply = '{"note": "x"} then {"score": 6}'
        assert parse_judge_reply(reply).score == 6

    def test_missing_reason(self) -> None:
        assert parse_judge_reply('{"score": 7}') == JudgeScore(score=7, reason="(no reason given)")

    def test_score_as_string(self) -> None:
        assert parse_judge_reply('{"score": "4", "reason": "meh"}').score == 4

    def test_score_line(self) -> None:
        result = parse_judge_reply("Score: 7\nThe answer is mostly right.")
        assert result.score == 7
        assert result.reason == "Score: 7\nThe answer is mostly right."

    @pytest.mark.parametrize("reply", ["score=10", "SCORE : 2", "Final score: 6/10"])
    def test_score_line_variants(self, reply: str) -> None:
        assert 1 <= parse_judge_reply(reply).score <= 10

    def test_score_line_reason_truncated(self) -> None:
        reply = "Score: 5 " + "x" * 1000
        assert len(parse_judge_reply(reply).reason) == 300

    @pytest.mark.parametrize(
        ("raw", "expected"), [("7.6", 8), ("7.4", 7), ("1.2", 1), ("9.9", 10), ("6.0", 6)]
    )
    def test_float_score_rounds(self, raw: str, expected: int) -> None:
        assert parse_judge_reply(f'{{"score": {raw}, "reason": "r"}}').score == expected
        assert parse_judge_reply(f"Score: {raw}").score == expected

    @pytest.mark.parametrize("score", ["0", "11", "-3", "100", "10.6", "0.4"])
    def test_out_of_range(self, score: str) -> None:
        with pytest.raises(JudgeReplyError, match="outside 1-10"):
            parse_judge_reply(f'{{"score": {score}, "reason": "r"}}')

    @pytest.mark.parametrize("reply", ["Score: 0", "Score: 11"])
    def test_out_of_range_score_line(self, reply: str) -> None:
        with pytest.raises(JudgeReplyError, match="outside 1-10"):
            parse_judge_reply(reply)

    @pytest.mark.parametrize(
        "reply", ["", "The answer looks good to me.", '{"reason": "no score here"}', "{broken"]
    )
    def test_no_score(self, reply: str) -> None:
        with pytest.raises(JudgeReplyError, match="no score"):
            parse_judge_reply(reply)

    @pytest.mark.parametrize("score", ['"high"', '"seven"', "null", "true", '"nan"', "[7]"])
    def test_non_numeric_score(self, score: str) -> None:
        with pytest.raises(JudgeReplyError, match="not a number"):
            parse_judge_reply(f'{{"score": {score}, "reason": "r"}}')

    def test_judge_reply_error_is_value_error(self) -> None:
        assert issubclass(JudgeReplyError, ValueError)

    @pytest.mark.parametrize("score", ["Infinity", '"inf"'])
    def test_infinite_score_is_a_judge_reply_error(self, score: str) -> None:
        with pytest.raises(JudgeReplyError):
            parse_judge_reply(f'{{"score": {score}, "reason": "r"}}')

    def test_brace_inside_reason(self) -> None:
        reply = '{"score": 8, "reason": "returns {} when the input is empty"}'
        assert parse_judge_reply(reply) == JudgeScore(
            score=8, reason="returns {} when the input is empty"
        )


class TestRealWorldJudgeReplies:
    """Reply shapes seen from real judge models, small ones especially. Before this parser, the
    cut-off JSON and bare fractions below had "no score": the judge counted as failed, and a
    tier that fails open accepted answers the judge had rated 1/10."""

    @pytest.mark.parametrize(
        ("reply", "score"),
        [
            ('{"score": 1, "reason": "The answer ignores the question and invents a', 1),
            ('{"score": 2, "reason": "Wrong: the capital of Australia is Canberra, not', 2),
            ('{\n  "score": 3,\n  "reason": "Misses', 3),
            ('```json\n{"score": 1, "reason": "Unfaithful', 1),
            ('{"score": 2,', 2),
        ],
    )
    def test_json_cut_off_by_max_tokens_after_the_score(self, reply: str, score: int) -> None:
        assert parse_judge_reply(reply, truncated=True).score == score

    def test_cut_off_reason_is_kept_and_marked(self) -> None:
        reply = '{"score": 1, "reason": "The answer ignores the question'
        assert parse_judge_reply(reply).reason == (
            "The answer ignores the question... (judge reply cut off)"
        )

    @pytest.mark.parametrize("reply", ['{"score": 1', '{"score": ', '{"sco', '{"score": 1\n'])
    def test_json_cut_off_at_or_before_the_score_is_refused(self, reply: str) -> None:
        # "1" may be the start of "10": no guessing.
        with pytest.raises(JudgeReplyError, match=r"cut off|no score"):
            parse_judge_reply(reply)

    @pytest.mark.parametrize("reply", ["Score: 1", "The answer is poor. Rating: 1", "1", "7/1"])
    def test_a_reply_cut_off_at_its_score_is_refused(self, reply: str) -> None:
        with pytest.raises(JudgeReplyError, match=r"cut off|no score"):
            parse_judge_reply(reply, truncated=True)

    @pytest.mark.parametrize(
        ("reply", "score"),
        [
            ('```json\n{"score": 7, "reason": "ok"}\n```\nLet me know if you need more.', 7),
            ('```\n{"score": 4, "reason": "thin"}\n```', 4),
            ("Score: 7/10\nReason: mostly right.", 7),
            ("**Score:** 8/10 - clear and correct.", 8),
            ("**Score**: 3\n**Reason**: wrong year", 3),
            ("7/10", 7),
            ("I would rate this answer 2/10 because it is wrong.", 2),
            ("I'd give it 6 out of 10.", 6),
            ("Rating: 4/5", 8),
            ("Score: 85/100", 8),
            ("{'score': 3, 'reason': 'bad'}", 3),
            ('{"Score": 9, "Reason": "complete"}', 9),
            ('{"score": "6/10", "reason": "ok"}', 6),
            ('{"verdict": {"score": 5, "reason": "partial"}}', 5),
            ("8", 8),
            ("**8**", 8),
            ("Score = 10", 10),
        ],
    )
    def test_shapes_judges_answer_in(self, reply: str, score: int) -> None:
        assert parse_judge_reply(reply).score == score

    def test_python_style_json_reason(self) -> None:
        assert parse_judge_reply("{'score': 3, 'reason': 'bad'}").reason == "bad"

    def test_a_date_is_not_a_score(self) -> None:
        with pytest.raises(JudgeReplyError, match="no score"):
            parse_judge_reply("The answer cites the report of 3/10/2024 correctly.")

    def test_a_fraction_of_another_kind_is_not_a_score(self) -> None:
        with pytest.raises(JudgeReplyError, match="no score"):
            parse_judge_reply("It uses 1/2 cup of flour, as asked.")

    @pytest.mark.parametrize(
        "reply",
        [
            "Score: 3. On reflection, Score: 8.",
            '{"score": 2} {"score": 9}',
            "Clarity 8/10, correctness 2/10.",
        ],
    )
    def test_disagreeing_scores_are_refused(self, reply: str) -> None:
        with pytest.raises(JudgeReplyError, match="disagreeing scores"):
            parse_judge_reply(reply)

    def test_agreeing_scores_are_one_score(self) -> None:
        assert parse_judge_reply("Score: 7/10. Overall 7/10.").score == 7

    def test_complete_json_wins_over_prose(self) -> None:
        reply = 'Thinking: Score: 3 at first.\n{"score": 8, "reason": "fine after all"}'
        assert parse_judge_reply(reply) == JudgeScore(score=8, reason="fine after all")

    @pytest.mark.parametrize(
        "reply",
        ["Looks good to me!", "The answer is correct and complete.", "```json\n{\n```", "N/A"],
    )
    def test_no_score_is_refused_not_guessed(self, reply: str) -> None:
        with pytest.raises(JudgeReplyError, match="no score"):
            parse_judge_reply(reply)

    @pytest.mark.parametrize("reply", ["Score: 0/10", "Rating: 6/5", "Score: -2", "15/10"])
    def test_scores_off_the_scale_are_refused(self, reply: str) -> None:
        with pytest.raises(JudgeReplyError, match=r"outside 1-10|no score"):
            parse_judge_reply(reply)

    def test_a_scale_of_zero_is_refused(self) -> None:
        with pytest.raises(JudgeReplyError, match="no scale"):
            parse_judge_reply("Score: 5/0")

    def test_judge_reply_error_is_a_judge_error(self) -> None:
        assert issubclass(JudgeReplyError, JudgeError)


class TestJudgeMessagesNote:
    def test_note_comes_before_the_request_for_a_verdict(self) -> None:
        messages = judge_messages("r", "q", "a", note="Note: cut.")
        content = messages[1]["content"]
        assert content.index("a") < content.index("Note: cut.") < content.index("Your verdict")

    def test_no_note_leaves_the_prompt_as_before(self) -> None:
        assert judge_messages("r", "q", "a")[1]["content"] == (
            "Question:\nq\n\nAnswer to grade:\na\n\nYour verdict (JSON):"
        )


# -- verdicts --------------------------------------------------------------------------------------


def passed(reason: str = "score 8") -> Verdict:
    return Verdict(passed=True, reason=reason, source="llm", score=8)


def failed(reason: str = "score 3") -> Verdict:
    return Verdict(passed=False, reason=reason, source="llm", score=3)


class TestAfterVerdict:
    @pytest.mark.parametrize("tier", ["cheap", "mid", "frontier"])
    def test_pass_accepts(self, settings: Settings, tier: str) -> None:
        step = after_verdict(settings, tier, passed("looks right"), 100)
        assert isinstance(step, Accept)
        assert step.reason == f"judge passed on {tier}: looks right"

    def test_fail_escalates_to_next_tier(self, settings: Settings) -> None:
        step = after_verdict(settings, "cheap", failed("score 3 < 6"), 100)
        assert step == Escalate(tier="mid", reason="escalated from cheap: score 3 < 6")

    def test_fail_on_mid_escalates_to_frontier(self, settings: Settings) -> None:
        step = after_verdict(settings, "mid", failed(), 100)
        assert isinstance(step, Escalate)
        assert step.tier == "frontier"
        assert "from mid" in step.reason

    def test_heuristic_fail_escalates(self, settings: Settings) -> None:
        verdict = Verdict(passed=False, reason="empty answer", source="heuristic")
        step = after_verdict(settings, "cheap", verdict, 10)
        assert step == Escalate(tier="mid", reason="escalated from cheap: empty answer")

    def test_fail_at_top_accepts(self, settings: Settings) -> None:
        step = after_verdict(settings, "frontier", failed("score 2"), 100)
        assert isinstance(step, Accept)
        assert "top tier answer accepted" in step.reason
        assert "score 2" in step.reason

    def test_fail_skips_tier_whose_window_is_too_small(self, clean_env: Path) -> None:
        settings = load_settings(
            tiers=[
                tier_dict("a", 1000, max_output_tokens=100),
                tier_dict("b", 2000, max_output_tokens=100),
                tier_dict("c", 10_000, max_output_tokens=100),
            ]
        )
        step = after_verdict(settings, "a", failed(), 5000)
        assert step == Escalate(tier="c", reason="escalated from a: score 3")

    def test_fail_with_nothing_above_that_fits_accepts(self, clean_env: Path) -> None:
        settings = load_settings(
            tiers=[
                tier_dict("a", 10_000, max_output_tokens=100),
                tier_dict("b", 2000, max_output_tokens=100),
            ]
        )
        step = after_verdict(settings, "a", failed("score 2"), 5000)
        assert isinstance(step, Accept)
        assert "score 2" in step.reason


class TestAfterCallFailure:
    def test_escalates(self, settings: Settings) -> None:
        step = after_call_failure(settings, "cheap", "HTTP 503", 100)
        assert isinstance(step, Escalate)
        assert step.tier == "mid"
        assert "from cheap" in step.reason
        assert "call failure" in step.reason
        assert "HTTP 503" in step.reason

    def test_fails_at_top(self, settings: Settings) -> None:
        step = after_call_failure(settings, "frontier", "timeout", 100)
        assert isinstance(step, Fail)
        assert "frontier" in step.reason
        assert "no tier is left" in step.reason
        assert "timeout" in step.reason

    def test_fails_when_nothing_above_fits(self, clean_env: Path) -> None:
        settings = load_settings(
            tiers=[
                tier_dict("a", 1000, max_output_tokens=100),
                tier_dict("b", 2000, max_output_tokens=100),
            ]
        )
        step = after_call_failure(settings, "a", "context too long", 5000)
        assert isinstance(step, Fail)
