"""Is a summary about its source? A content-word overlap check, free next to a judge call. Pure.

The face checks (``judges.summary``) pass a summary with the right format and length, no
copied passage, and no invented numbers or names. A small model's "summary" can have all of
that and still be about nothing the source says: "Your answer has been accepted. You can use it
to enhance your own work." The check here catches that. It asks how many of the summary's
content words (not function words, at least four letters) the source uses too. A summary
condenses its source, so most of its content words come from it. Boilerplate, a reply to the
wrong prompt, or a summary of another document shares few.

Words are compared by their first six letters, so "containers" matches "container" and
"moving" matches "moves". That is a crude stem, but it needs no language model. The threshold
is calibrated on real summaries a real model wrote (``bench/grounding.py``, which reports the
check's precision and recall next to the others'). Translations are not checked: a summary in
another language than its source shares no words with it by design.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_GROUNDED_SHARE = 0.5
"""Of a summary's content words, the share the source must use too. Calibrated on
bench/grounding.md's labelled set: the best threshold between the bad summaries (median share
well below) and the good ones (nearly all above)."""

MIN_CONTENT_WORDS = 5
"""Fewer content words than this say too little to judge: the length checks handle them."""

STEM_LETTERS = 6
_LETTERS = re.compile(r"[^\W\d_]+")

_STOP_WORD_TEXT = """
    about above after again against also although among another because been before being
    below between both cannot could does doing down during each either even ever every from
    further have having here hers herself himself however into itself just many more most
    much must myself neither never other others ought ours ourselves over same shall should
    since some such than that their theirs them themselves then there these they this those
    though through thus under until upon very were what when where whether which while whom
    whose will with within without would your yours yourself yourselves
    summary summarize summarizes summarised summarized text document article passage describes
    describe explains explain discusses discuss covers main points overall
    """
_STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())
"""English function words, and the words any summary uses about itself ("this document
describes"), which say nothing about the source."""


@dataclass(frozen=True)
class Grounding:
    """How much of the summary the source supports."""

    content_words: int  # the summary's, counted with repeats
    grounded: int  # of those, the ones whose stem the source uses

    @property
    def share(self) -> float:
        return self.grounded / self.content_words if self.content_words else 1.0


def grounding(source: str, summary: str) -> Grounding:
    """The summary's content words, and how many of them the source uses (by stem)."""
    known = {_stem(word) for word in _content_words(source)}
    found = _content_words(summary)
    return Grounding(len(found), sum(_stem(word) in known for word in found))


def grounding_failure(
    source: str, summary: str, min_share: float = MIN_GROUNDED_SHARE
) -> str | None:
    """Why the summary is not about its source, or None when it is (or is too short to say)."""
    measured = grounding(source, summary)
    if measured.content_words < MIN_CONTENT_WORDS or measured.share >= min_share:
        return None
    return (
        f"not about its source: {measured.grounded} of {measured.content_words} content words "
        f"({measured.share:.0%}) appear in it (at least {min_share:.0%} expected)"
    )


def _content_words(text: str) -> list[str]:
    return [
        word
        for word in (w.casefold() for w in _LETTERS.findall(text))
        if len(word) >= 4 and word not in _STOP_WORDS
    ]


def _stem(word: str) -> str:
    return word[:STEM_LETTERS]
