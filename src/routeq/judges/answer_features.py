"""What a cheap tier's answer gives away about its own correctness. Pure.

A cascade sends every query to a cheap tier first and escalates the answers that look wrong.
These features are the signals a verifier learns from (``routeq.learned.cascade``), chosen
because they are visible in the answer text of any model, without a second call:

- **unfinished**: no final-answer line, or the text stops mid-calculation (the model ran out
  of tokens or lost its way);
- **arithmetic slips**: each written calculation (``3 * 4 = 12``, or GSM8K's ``<<3*4=12>>``)
  is recomputed, and the wrong ones counted;
- **an implausible answer**: a fractional or negative final number for a question about
  countable things, or the answer merely copying a number from the question;
- **effort and coherence**: how many steps and characters the answer took, whether its final
  answer is the result of its last calculation, and the share of the question's numbers it
  never uses (a missed quantity is a classic wrong answer).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Protocol


class AnswerVerifier(Protocol):
    """What the judge step asks of a trained verifier (``routeq.learned.cascade``)."""

    @property
    def min_p_good(self) -> float:
        """Answers predicted good with less than this fail."""
        ...

    def applies_to(self, tier: str) -> bool:
        """Whether it reads this tier's answers."""
        ...

    def p_good(self, question: str, answer: str) -> float:
        """The probability that ``answer`` to ``question`` is good."""
        ...


NAMES = (
    "has_final",
    "unfinished",
    "steps",
    "wrong_steps",
    "wrong_share",
    "final_fractional",
    "final_negative",
    "final_in_question",
    "log_chars",
    "numbers",
    "final_is_last_result",
    "unused_question_numbers",
)

_FINAL = re.compile(r"(?:####|[Tt]he (?:final )?answer is|[Aa]nswer:)\s*\$?\s*(-?[\d,]*\.?\d+)")
_ANNOTATED = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
# A written calculation: a bounded run of arithmetic characters, "=", a number. One character
# class repeated, no nested repetition: linear time on any answer (no catastrophic backtracking).
_WRITTEN = re.compile(r"([\d\s.,+\-*/x\u00d7\u00f7()$%]{3,120})=\s*\$?(-?\d[\d,]*(?:\.\d+)?)")
_OPERATOR = re.compile(r"\d\s*[-+*/x\u00d7\u00f7]\s*[\d($]")
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")

_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip().rstrip("."))
    except ValueError:
        return None


def evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression of numbers, + - * / and parentheses, or None when
    it is anything else. ``x`` and the multiplication and division signs read as operators,
    ``%`` as /100; ``$`` and thousands commas are ignored. Never runs code: the parsed tree is
    walked, not evaluated."""
    cleaned = (
        expression.replace("$", "")
        .replace(",", "")
        .replace("\u00d7", "*")
        .replace("\u00f7", "/")
        .replace("%", "/100")
    )
    cleaned = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", cleaned)
    if len(cleaned) > 200:
        return None
    try:
        tree = ast.parse(cleaned.strip(), mode="eval")
    except SyntaxError:
        return None
    try:
        return _walk(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError):
        return None


def _walk(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _walk(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_walk(node.left), _walk(node.right))
    raise ValueError("not arithmetic")


def _close(a: float, b: float) -> bool:
    """Equal to the precision an answer writes (a rounded 33.33 for 100/3 counts as right)."""
    return math.isclose(a, b, rel_tol=0.01, abs_tol=0.011)


def _calculations(answer: str) -> list[tuple[str, str]]:
    annotated = _ANNOTATED.findall(answer)
    if annotated:
        return annotated
    return [(left, right) for left, right in _WRITTEN.findall(answer) if _OPERATOR.search(left)]


def answer_features(question: str, answer: str) -> list[float]:
    """The features in ``NAMES`` order."""
    finals = _FINAL.findall(answer)
    final = _number(finals[-1]) if finals else None
    calculations = _calculations(answer)
    wrong = 0
    for left, right in calculations:
        expected, written = evaluate(left), _number(right)
        if expected is not None and written is not None and not _close(expected, written):
            wrong += 1
    stripped = answer.rstrip()
    unfinished = final is None and (
        not stripped
        or stripped.endswith(("<<", "=", "+", "-", "*", "/", ","))
        or bool(re.search(r"<<[^>]*$", stripped))
    )
    question_numbers = {_number(n) for n in _NUMBER.findall(question)} - {None}
    answer_numbers = {_number(n) for n in _NUMBER.findall(answer)}
    last_result = _number(calculations[-1][1]) if calculations else None
    unused = (
        len(question_numbers - answer_numbers) / len(question_numbers) if question_numbers else 0.0
    )
    return [
        float(final is not None),
        float(unfinished),
        float(len(calculations)),
        float(wrong),
        wrong / len(calculations) if calculations else 0.0,
        float(final is not None and not float(final).is_integer()),
        float(final is not None and final < 0),
        float(final is not None and final in question_numbers),
        math.log1p(len(answer)),
        float(len(_NUMBER.findall(answer))),
        float(final is not None and last_result is not None and _close(final, last_result)),
        unused,
    ]
