"""Fitting the LLM judge's prompt into the judge model's context window. Pure.

A summary's judge sees the whole source, so a judge model with a small window (a small open model
served with a 2,048-token context, say) refused long sources with HTTP 400 and the answers went
through unjudged. Here the prompt is built to fit instead:

- The question (for a summary: the instructions and the source) is shortened first, keeping its
  head and its tail around a marked elision, and the judge is told that part was left out.
- The answer being judged is kept whole whenever the rubric, the framing, the answer and a
  minimal part of the question fit. Only when the answer alone does not fit is it shortened too
  (head and tail, marked), and the returned notes say so: a verdict on part of an answer is
  recorded as such, never passed off as a verdict on all of it.
- The budget is the window minus the judge's reply allowance (``max_tokens``), with routeq's
  token count raised by the safety margin (``routeq.tokens``), because the judge model's
  tokenizer counts differently. The result is checked against that budget after it is built.

When even the rubric and a minimal answer cannot fit, :class:`JudgePromptTooLargeError` is raised:
the worker treats it like a failed judge call, and the tier's fail mode decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from routeq.judges.llm import JudgeError, judge_messages
from routeq.tokens import (
    DEFAULT_TOKEN_MARGIN,
    count_message_tokens,
    count_tokens,
    fits_window,
    prompt_budget,
)

__all__ = [
    "FittedJudgePrompt",
    "JudgeBudget",
    "JudgePromptTooLargeError",
    "fit_judge_messages",
    "shorten",
]

MIN_QUESTION_TOKENS: Final = 64
"""Tokens of a long question kept whatever the answer's length: the judge must see what was
asked. Shorter questions are kept whole."""
ANSWER_SHARE_WHEN_CUT: Final = 0.75
"""When the answer must be cut too, the share of the room it gets (the question the rest)."""
MIN_ANSWER_TOKENS: Final = 16
"""Fewer tokens of the answer than this and no verdict would mean anything."""
HEAD_SHARE: Final = 0.6
"""Share of a shortened text kept from its start (the rest from its end): the start of a document
or an answer carries most of its point, the end its conclusion (or, for a question, the ask)."""
_ATTEMPTS: Final = 6
"""Rebuilds when joining the pieces counts a few tokens more than the pieces did."""
_REFINEMENTS: Final = 8
"""Counts spent finding where to cut one end of a text."""


class JudgePromptTooLargeError(JudgeError):
    """The judge's window cannot hold its rubric, the prompt's framing and a minimal answer."""


@dataclass(frozen=True)
class JudgeBudget:
    """The judge model's window and what it must leave free.

    ``context_window`` is in the model's tokens (input + output); ``max_output_tokens`` is the
    ``max_tokens`` the judge call asks for; ``margin`` raises routeq's counts (see
    ``routeq.tokens.with_margin``).
    """

    context_window: int
    max_output_tokens: int
    margin: float = DEFAULT_TOKEN_MARGIN

    @property
    def prompt_tokens(self) -> int:
        """The largest prompt, counted by routeq, that fits."""
        return prompt_budget(self.context_window, self.max_output_tokens, self.margin)

    def fits(self, prompt_tokens: int) -> bool:
        return fits_window(prompt_tokens, self.max_output_tokens, self.context_window, self.margin)


@dataclass(frozen=True)
class FittedJudgePrompt:
    """The judge's messages, and what was left out to fit them.

    ``prompt_tokens`` is routeq's count of ``messages``; ``question_tokens`` and
    ``answer_tokens`` are (kept, total) counts; ``notes`` are sentences for the judge hop's
    reason (empty when nothing was cut).
    """

    messages: list[dict[str, str]]
    prompt_tokens: int
    question_tokens: tuple[int, int]
    answer_tokens: tuple[int, int]
    notes: tuple[str, ...] = field(default=())

    @property
    def shortened(self) -> bool:
        """Whether anything was left out."""
        return bool(self.notes)

    @property
    def answer_shortened(self) -> bool:
        """Whether the judge sees only part of the answer it scores."""
        kept, total = self.answer_tokens
        return kept < total


def fit_judge_messages(
    rubric: str,
    question: str,
    answer: str,
    budget: JudgeBudget | None,
    *,
    question_label: str = "question",
) -> FittedJudgePrompt:
    """The judge's messages for ``answer`` (as :func:`judge_messages` builds them), shortened to
    fit ``budget``; with ``budget`` None (no window configured) they are built whole.

    ``question_label`` names the question in the elision marker and the notes ("source" for a
    summary's text). Raises :class:`JudgePromptTooLargeError` when no useful prompt fits.
    """
    whole = judge_messages(rubric, question, answer)
    total = count_message_tokens(whole)
    question_total, answer_total = count_tokens(question), count_tokens(answer)
    if budget is None or budget.fits(total):
        return FittedJudgePrompt(
            whole, total, (question_total, question_total), (answer_total, answer_total)
        )
    limit = budget.prompt_tokens
    # The framing around the two texts: rubric, labels, the note and two elision markers at
    # their longest. Whatever the texts are cut to, the rest is the room they share.
    framing = (
        count_message_tokens(judge_messages(rubric, "", "", note=_note(question_label, True, True)))
        + count_tokens(_marker(question_total, question_label))
        + count_tokens(_marker(answer_total, "answer"))
    )
    room = limit - framing
    for _ in range(_ATTEMPTS):
        question_keep, answer_keep = _shares(room, question_total, answer_total)
        if answer_keep < min(answer_total, MIN_ANSWER_TOKENS) or room <= 0:
            raise JudgePromptTooLargeError(
                f"the judge's context window ({budget.context_window} tokens, "
                f"{budget.max_output_tokens} kept for its reply, counts raised by "
                f"{budget.margin:.0%}) cannot hold the rubric, the prompt's framing "
                f"({framing} tokens) and {MIN_ANSWER_TOKENS} tokens of the answer"
            )
        short_question, question_kept = shorten(
            question, question_keep, question_label, total=question_total
        )
        short_answer, answer_kept = shorten(answer, answer_keep, "answer", total=answer_total)
        cut_question, cut_answer = question_kept < question_total, answer_kept < answer_total
        note = _note(question_label, cut_question, cut_answer)
        messages = judge_messages(rubric, short_question, short_answer, note=note)
        tokens = count_message_tokens(messages)
        if tokens <= limit:
            return FittedJudgePrompt(
                messages,
                tokens,
                (question_kept, question_total),
                (answer_kept, answer_total),
                _notes(question_label, question_kept, question_total, answer_kept, answer_total),
            )
        room -= tokens - limit  # the joins counted a few more tokens than the pieces
    raise JudgePromptTooLargeError(  # pragma: no cover - the joins never drift this far
        f"the judge's prompt did not come under {limit} tokens after {_ATTEMPTS} attempts"
    )


def _shares(room: int, question: int, answer: int) -> tuple[int, int]:
    """Token budgets of the question and the answer within ``room``: the answer whole when it
    leaves the question its minimum, else the answer ``ANSWER_SHARE_WHEN_CUT`` of the room."""
    question_floor = min(question, MIN_QUESTION_TOKENS)
    if answer + question_floor <= room:
        return min(question, room - answer), answer
    question_keep = min(question, max(question_floor, room - round(room * ANSWER_SHARE_WHEN_CUT)))
    return question_keep, min(answer, room - question_keep)


def shorten(text: str, keep: int, label: str, *, total: int | None = None) -> tuple[str, int]:
    """``text`` cut to at most ``keep`` tokens of its own (plus an elision marker) by keeping its
    head and its tail, each cut at whitespace where there is some; returns the text and the
    tokens of ``text`` it kept. Unchanged when it already fits."""
    total = count_tokens(text) if total is None else total
    if total <= keep:
        return text, total
    if keep <= 0:
        return _marker(total, label).strip(), 0
    head_budget = round(keep * HEAD_SHARE)
    head_end = _prefix_end(text, head_budget, total)
    tail_start = _suffix_start(text, keep - count_tokens(text[:head_end]), total, head_end)
    head, tail = text[:head_end].rstrip(), text[tail_start:].lstrip()
    kept = count_tokens(head) + count_tokens(tail)
    return f"{head}{_marker(total - kept, label)}{tail}", kept


def _prefix_end(text: str, budget: int, total: int) -> int:
    """End of a whitespace-bounded prefix of at most ``budget`` tokens, as long as a few
    refinements of a proportional first guess find (0 when none fits)."""
    return _longest(
        len(text), budget, total, lambda n: _snap_back(text, n), lambda n: count_tokens(text[:n])
    )


def _suffix_start(text: str, budget: int, total: int, floor: int) -> int:
    """Start of a whitespace-bounded suffix of at most ``budget`` tokens, never before
    ``floor`` (the head's end)."""
    size = len(text)

    def snap(length: int) -> int:
        return size - _snap_forward(text, size - length)

    length = _longest(
        size - floor,
        budget,
        total * (size - floor) // max(size, 1) or 1,
        snap,
        lambda n: count_tokens(text[size - n :]),
    )
    return size - length


def _longest(
    size: int,
    budget: int,
    total: int,
    snap: Callable[[int], int],
    tokens: Callable[[int], int],
) -> int:
    """The longest length ``n <= size`` (as snapped) with ``tokens(n) <= budget`` that a few
    proportional refinements reach: counting is the costly step, so it is done a handful of
    times on pieces no longer than the budget needs, never as a search over every length."""
    if budget <= 0 or size <= 0:
        return 0
    best = 0
    guess = size * budget // max(total, 1)
    for _ in range(_REFINEMENTS):
        length = snap(min(size, max(1, guess)))
        counted = tokens(length)
        if counted <= budget:
            best = max(best, length)
            if length >= size or counted >= budget * 0.95:
                break
            guess = length + max(1, (budget - counted) * length // max(counted, 1))
        else:
            guess = length * budget // counted - 1
    return best


_SNAP_CHARS: Final = 200
"""How far a cut moves to reach whitespace; text without any is cut where it is."""


def _snap_back(text: str, end: int) -> int:
    space = max(text.rfind(" ", max(0, end - _SNAP_CHARS), end), text.rfind("\n", 0, end))
    return space if space > 0 and end - space <= _SNAP_CHARS else end


def _snap_forward(text: str, start: int) -> int:
    candidates = [i for i in (text.find(" ", start), text.find("\n", start)) if i != -1]
    space = min(candidates) if candidates else -1
    return space + 1 if space != -1 and space - start <= _SNAP_CHARS else start


def _marker(omitted: int, what: str) -> str:
    """The elision mark put where the middle of a text was left out."""
    return f"\n\n[... {omitted:,} tokens of the {what} left out to fit the context window ...]\n\n"


def _note(question_label: str, question_cut: bool, answer_cut: bool) -> str | None:
    """What the judge is told about the parts it does not see."""
    parts = []
    if question_cut:
        parts.append(f"the middle of the {question_label}")
    if answer_cut:
        parts.append("the middle of the answer")
    if not parts:
        return None
    return (
        f"Note: {' and '.join(parts)} {'was' if len(parts) == 1 else 'were'} left out to fit "
        "your context window (marked [...]). Judge what is shown; do not count references to "
        "the left-out parts as errors."
    )


def _notes(
    question_label: str,
    question_kept: int,
    question_total: int,
    answer_kept: int,
    answer_total: int,
) -> tuple[str, ...]:
    """Sentences for the ledger saying what the judge did not see."""
    notes = []
    if question_kept < question_total:
        notes.append(
            f"judge saw {question_kept:,} of {question_total:,} {question_label} tokens "
            "(head and tail)"
        )
    if answer_kept < answer_total:
        notes.append(
            f"judge saw only {answer_kept:,} of {answer_total:,} answer tokens (head and tail): "
            "the answer alone did not fit the judge's context window"
        )
    return tuple(notes)
