"""Cheap checks that fail an answer without paying for a judge model. Pure."""

from __future__ import annotations

import re

from routeq.config import ESCALATE_TOKEN

_REFUSAL = re.compile(
    r"\b(?:I'?m sorry,? but I can(?:'|no)?t|I can(?:'|no)?t help with|I cannot (?:help|assist)"
    r"|I'?m (?:unable|not able) to (?:help|assist)|I won'?t be able to help)",
    re.IGNORECASE,
)
_ASKS_FOR_CODE = re.compile(
    r"\b(?:code|function|script|snippet|implement(?:ation)?|program|regex|sql query|in python"
    r"|in javascript|in rust|in go)\b",
    re.IGNORECASE,
)
_CODE_BLOCK = re.compile(r"```")


def asks_for_code(question: str) -> bool:
    """Whether the question asks for code, so the answer should carry a code block."""
    return _ASKS_FOR_CODE.search(question) is not None


def heuristic_failure(question: str, answer: str | None, finish_reason: str | None) -> str | None:
    """The first reason the answer is unacceptable on its face, or None when it passes."""
    text = (answer or "").strip()
    if not text:
        return "empty answer"
    if finish_reason == "length":
        return "answer truncated (finish_reason=length)"
    if ESCALATE_TOKEN in text:
        return f"model asked to escalate ({ESCALATE_TOKEN})"
    if _REFUSAL.search(text[:300].replace("\u2019", "'")):
        return "model refused to answer"
    if asks_for_code(question) and not _CODE_BLOCK.search(text):
        return "question asks for code but the answer has no code block"
    return None
