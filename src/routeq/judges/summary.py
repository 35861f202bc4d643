"""Cheap checks that fail a document summary without paying for a judge model. Pure.

A summary is judged against the :class:`~routeq.summary_spec.SummarySpec` it was asked for and
the text it summarises. Most bad summaries are bad on their face: the wrong format or length,
a copy of the input, numbers or names the input never mentions, the wrong language. Catching
those here is free, and every reason is specific (with counts and the offending tokens)
because it is recorded in the ledger as why the answer was escalated.

The checks are heuristics, tuned to rather pass a dubious summary (the LLM judge still sees it)
than fail a good one (which costs a needless escalation).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator

from routeq.judges.grounding import grounding_failure
from routeq.summary_spec import LANGUAGES, SummarySpec

COPY_RUN_WORDS = 30
"""A verbatim run this long (in words) means the model copied instead of summarising."""

COPY_LENGTH_RATIO = 0.8
"""A summary this close to the input's length (of a long input) has not condensed anything."""

MAX_SHOWN = 5
"""How many offending numbers or names a reason lists; enough to act on, short for the ledger."""

MIN_LANGUAGE_WORDS = 12
"""Below this many words, function-word counts are too few to tell languages apart."""

MIN_LANGUAGE_HITS = 3
LANGUAGE_MARGIN = 1.5
"""A language wins with at least MIN_LANGUAGE_HITS function words and this many times the
runner-up's; anything closer is left undecided rather than risk failing a good summary."""

_SIM_LABEL = re.compile(r"^\s*\[sim:[^\]\s]+ q=\d+(?:\.\d+)?\]\s*")
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_HEADING = re.compile(r"^\s*#")
_HEADING_MARKS = re.compile(r"^\s*#+\s*")
_SENTENCE_END = re.compile(r"[.!?:…]\W*\s")
_WORD_PARTS = re.compile(r"['\u2019-]")
# Thousands-grouped or plain integer part, optional fraction (decimal point or comma), and a
# percent sign that is shown but not compared. Lookbehinds keep a match from starting
# inside another number, so "1.2.3" does not yield a separate "3".
_NUMBER = re.compile(
    r"(?<!\d)(?<!\d[.,])(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>[.,]\d+)?(?!\d)(?P<pct>%?)"
)

_FUNCTION_WORD_TEXT: dict[str, str] = {
    "en": (
        "the and of to that with for is are was were this these which it its on by from have "
        "has be been not or an their they at but will also would there"
    ),
    "de": (
        "der die das und ist nicht mit ein eine einer zu den dem des von sich auch auf für im "
        "wird werden sind wurde dass es bei nach aus oder"
    ),
    "fr": (
        "le la les et est de des un une du que qui pour dans pas sur au aux avec ce cette il "
        "elle sont ont par se plus mais qu d l"
    ),
    "es": (
        "el la los las y es de en del que un una por para con se su sus al como más pero lo "
        "esta este son fue"
    ),
    "it": (
        "il lo la i gli le e è di che un una per con del della delle dei non sono nel nella alla "
        "anche come questo questa più ma ha l"
    ),
    "pt": (
        "o os e é de do da dos das em um uma que não com para por no na nos nas se mais ao foi "
        "são ser pela pelo"
    ),
    "nl": (
        "de het een en van is dat die niet op te met voor zijn er aan ook als bij om door maar "
        "naar wordt worden deze dit werd"
    ),
}
"""Very common function words per language, chosen to be distinctive. Words several languages
share (``de``, ``la``, ``que``) count for each of them: that cancels out between those
languages and leaves the decision to the words only one of them uses. Elided ``l'``/``d'``
appear as ``l``/``d`` because apostrophes split tokens before counting."""

_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    code: frozenset(text.split()) for code, text in _FUNCTION_WORD_TEXT.items()
}


def strip_sim_label(text: str) -> str:
    """The text without a leading ``[sim:MODEL q=X]`` label of routeq's simulated server.

    Simulated answers carry that honest label, but it is not part of the summary: left in, its
    ``q=0.83`` would count as a word and as a number the source never mentions.
    """
    return _SIM_LABEL.sub("", text, count=1)


def words(text: str) -> list[str]:
    """Word tokens: letter/digit runs, joined across inner apostrophes and hyphens.

    Punctuation and bullet markers such as ``-`` are not words, so lengths are counted the way
    a reader would count them.
    """
    return _WORD.findall(text)


def longest_shared_run(source: str, summary: str) -> int:
    """Length in words of the longest run the summary repeats verbatim (ignoring case) from
    the source: the signature of copying passages instead of summarising them.

    Dynamic programming over source positions: for each summary word, the runs ending there
    are the runs ending at the previous word, extended where the source continues with the
    same word. Only the positions where the word occurs in the source are touched, so the cost
    is the number of matching word pairs, not source length times summary length.
    """
    positions: dict[str, list[int]] = defaultdict(list)
    for index, word in enumerate(_folded_words(source)):
        positions[word].append(index)
    best = 0
    previous: dict[int, int] = {}
    for word in _folded_words(summary):
        current = {index: previous.get(index - 1, 0) + 1 for index in positions.get(word, ())}
        if current:
            best = max(best, *current.values())
        previous = current
    return best


def unsupported_numbers(source: str, summary: str) -> list[str]:
    """Numbers in the summary that the source does not contain, as written, in order, once.

    Invented figures are the most damaging hallucination in a summary and the easiest to spot.
    ``1,204`` equals ``1204``, ``3,5`` equals ``3.5``, ``17%`` equals ``17``; a sentence's
    final period is not a decimal point. Numbered-list markers (``1.``) are not numbers.
    """
    known = {_number_key(match) for match in _NUMBER.finditer(source)}
    found: dict[str, str] = {}
    for match in _NUMBER.finditer(_without_markers(summary)):
        key = _number_key(match)
        if key not in known and key not in found:
            found[key] = match.group(0)
    return list(found.values())


def unsupported_entities(source: str, summary: str, *, acronyms_only: bool = False) -> list[str]:
    """Name-like words in the summary that the source never uses (ignoring case), in order, once.

    A capitalised word in mid-sentence is usually a name, and a name the source does not
    contain is invented; so is an ALL-CAPS acronym anywhere. Sentence- and bullet-initial words
    are skipped because capitals there mean nothing. ``acronyms_only`` is for languages such as
    German, where every noun is capitalised and only acronyms still stand out.
    """
    vocabulary = _vocabulary(source)
    found: dict[str, str] = {}
    for word in _name_candidates(summary, acronyms_only=acronyms_only):
        key = word.casefold()
        if key not in found and not _is_known(word, vocabulary):
            found[key] = word
    return list(found.values())


_CODE_BLOCK = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_INLINE_CODE = re.compile(r"(`+)[^`]*?\1")
_EDGE_PUNCTUATION = "()[]{}<>\"'\u2018\u2019\u201c\u201d,.;:!?*"
_NOT_PROSE = re.compile(r"""://|^www\.|[/\\@_=$#<>{}\[\]|]|\w\.\w|[a-z][A-Z]|\(|::|^-""")
"""A token that is machine text rather than a word: a URL or domain (``github.com``), a path
(``src/app.py``, ``C:\\x``), an e-mail, an identifier (``retry_policy``, ``maxRetries``,
``os.path``, ``run()``, ``a::b``), a command-line flag (``-e``), an assignment."""


def _prose(text: str) -> str:
    """The text without what is not prose: code blocks, inline code and machine tokens.

    A URL is read as words by :func:`words`, and its pieces are function words of other
    languages: ``com`` (Portuguese "with") in every ``github.com``, ``e`` in ``pip install -e``,
    ``en`` in ``/en/latest/``. An English summary that lists a package's links would be called
    Portuguese; only the prose around them says what language the summary is in.
    """
    text = _INLINE_CODE.sub(" ", _CODE_BLOCK.sub(" ", text))
    kept = [
        token
        for token in text.split()
        if not _NOT_PROSE.search(token.strip(_EDGE_PUNCTUATION) or token) and "()" not in token
    ]
    return " ".join(kept)


def detect_language(text: str) -> str | None:
    """The code (a key of ``LANGUAGES``) of the language the text is written in, or None.

    Counts very common function words per language; they make up a large share of any prose,
    so a clear winner is reliable even for a short summary. Only the :func:`_prose` is read, so
    links and code do not count. None when the text is too short or no language wins clearly:
    the check should only fail summaries that are plainly wrong.
    """
    tokens = words(_prose(text))
    if len(tokens) < MIN_LANGUAGE_WORDS:
        return None
    parts = [part for token in tokens for part in _WORD_PARTS.split(token.casefold())]
    hits = {
        code: sum(part in vocabulary for part in parts)
        for code, vocabulary in _FUNCTION_WORDS.items()
    }
    ranked = sorted(hits.items(), key=lambda item: item[1], reverse=True)
    (best, best_hits), (_, runner_up_hits) = ranked[0], ranked[1]
    if best_hits < MIN_LANGUAGE_HITS or best_hits < LANGUAGE_MARGIN * runner_up_hits:
        return None
    return best


def summary_failure(
    spec: SummarySpec, source: str, summary: str, *, condensing: bool = True
) -> str | None:
    """Every reason the summary fails its spec on its face, joined by "; ", or None if none.

    All reasons are reported, not just the first, so the ledger shows everything that was
    wrong with an escalated answer. ``condensing=False`` skips the copy checks: combining
    partial summaries, which are short already, may rightly keep most of their words.
    """
    text = strip_sim_label(summary).strip()
    if not text:
        return "empty summary"
    body = _without_markers(text)
    source_count, summary_count = len(words(source)), len(words(body))
    reasons = [
        _format_failure(spec, text),
        _length_failure(spec, source_count, summary_count),
        *(_copy_failures(spec, source, body, source_count, summary_count) if condensing else []),
        _numbers_failure(source, text),
        _entities_failure(spec, source, text),
        _language_failure(spec, body),
        _grounding_failure(spec, source, body),
    ]
    failed = [reason for reason in reasons if reason is not None]
    return "; ".join(failed) if failed else None


# -- the checks ------------------------------------------------------------------------------------


def _grounding_failure(spec: SummarySpec, source: str, body: str) -> str | None:
    """A summary must be about its source; a translation is not checked (no shared words).
    The source's language is read only for a summary that fails, not for every summary."""
    failure = grounding_failure(source, body)
    if failure is None or detect_language(source) not in (None, spec.language):
        return None
    return failure


def _format_failure(spec: SummarySpec, text: str) -> str | None:
    """A bulleted list must be all bullets; a paragraph must have no bullets or headings."""
    lines = [line for line in text.splitlines() if line.strip()]
    if spec.format == "bullets":
        loose = sum(_BULLET.match(line) is None for line in lines)
        if loose:
            return (
                f"format: expected a bulleted list, {loose} of {len(lines)} lines are not bullets"
            )
        return None
    bullets = sum(_BULLET.match(line) is not None for line in lines)
    headings = sum(_HEADING.match(line) is not None for line in lines)
    found = [
        _plural(count, noun)
        for count, noun in ((bullets, "bullet line"), (headings, "heading line"))
        if count
    ]
    if found:
        return f"format: expected one paragraph, found {' and '.join(found)}"
    return None


def _length_failure(spec: SummarySpec, source_count: int, summary_count: int) -> str | None:
    """The summary must fit the requested word range, relaxed for a very short input.

    A source shorter than the requested minimum cannot be summarised faithfully into more
    words than it has, so the minimum drops to half the source's length.
    """
    low = min(spec.min_words, max(1, source_count // 2))
    if low <= summary_count <= spec.max_words:
        return None
    if low < spec.min_words:
        return (
            f"length: {summary_count} words, outside the allowed {low}-{spec.max_words} "
            f"(the input has only {source_count} words)"
        )
    return f"length: {summary_count} words, outside the requested {low}-{spec.max_words}"


def _copy_failures(
    spec: SummarySpec, source: str, text: str, source_count: int, summary_count: int
) -> list[str]:
    """A summary must condense the input and say it in its own words."""
    reasons: list[str] = []
    if source_count > spec.max_words and summary_count >= COPY_LENGTH_RATIO * source_count:
        share = round(100 * summary_count / source_count)
        reasons.append(f"copy: the summary is {share}% of the input's length (not condensed)")
    run = longest_shared_run(source, text)
    if run >= COPY_RUN_WORDS:
        reasons.append(f"copy: repeats a {run}-word passage of the input verbatim")
    return reasons


def _numbers_failure(source: str, text: str) -> str | None:
    """Every number in the summary must come from the source."""
    numbers = unsupported_numbers(source, text)
    return f"numbers not in the source: {_listing(numbers)}" if numbers else None


def _entities_failure(spec: SummarySpec, source: str, text: str) -> str | None:
    """Every name in the summary must come from the source."""
    names = unsupported_entities(source, text, acronyms_only=spec.language == "de")
    return f"names not in the source: {_listing(names)}" if names else None


def _language_failure(spec: SummarySpec, text: str) -> str | None:
    """The summary must be in the requested language, when its language is recognisable."""
    detected = detect_language(text)
    if detected is None or detected == spec.language:
        return None
    return (
        f"language: written in {LANGUAGES[detected]} ({detected}), "
        f"requested {LANGUAGES[spec.language]} ({spec.language})"
    )


# -- helpers ---------------------------------------------------------------------------------------


def _folded_words(text: str) -> list[str]:
    """Words compared case-insensitively."""
    return [word.casefold() for word in words(text)]


def _without_markers(text: str) -> str:
    """The text with list markers and heading hashes removed from the start of each line.

    They are layout, not content: a numbered list's ``1.`` is neither a word nor a number.
    """
    return "\n".join(_HEADING_MARKS.sub("", _BULLET.sub("", line)) for line in text.splitlines())


def _number_key(match: re.Match[str]) -> str:
    """A number in comparable form: no thousands commas or leading zeros, "." as decimal point,
    no trailing fractional zeros; so ``1,204`` == ``1204``, ``07`` == ``7``, ``3,50`` == ``3.5``.
    """
    integer = match.group("int").replace(",", "").lstrip("0") or "0"
    fraction = (match.group("frac") or "")[1:].rstrip("0")
    return f"{integer}.{fraction}" if fraction else integer


def _name_candidates(text: str, *, acronyms_only: bool) -> Iterator[str]:
    """Words that look like names: acronyms anywhere, capitalised words mid-sentence."""
    for line in text.splitlines():
        body = _BULLET.sub("", line)
        previous_end: int | None = None
        for match in _WORD.finditer(body):
            word = match.group(0)
            sentence_start = previous_end is None or (
                _SENTENCE_END.search(body[previous_end : match.start()]) is not None
            )
            previous_end = match.end()
            if _is_acronym(word) or (
                not acronyms_only and not sentence_start and _is_capitalised_name(word)
            ):
                yield word


def _is_acronym(word: str) -> bool:
    """ALL-CAPS with at least two letters: ``EU``, ``NASA``, ``COVID-19``."""
    return word.isupper() and sum(char.isalpha() for char in word) >= 2


def _is_capitalised_name(word: str) -> bool:
    """Starts with a capital letter, and is not the pronoun "I" (or "I'm", "I'd", ...)."""
    return word[0].isupper() and _WORD_PARTS.split(word)[0] != "I"


def _vocabulary(source: str) -> set[str]:
    """The source's words ignoring case, plus their apostrophe- and hyphen-separated parts."""
    vocabulary: set[str] = set()
    for word in _folded_words(source):
        vocabulary.add(word)
        vocabulary.update(_WORD_PARTS.split(word))
    return vocabulary


def _is_known(word: str, vocabulary: set[str]) -> bool:
    """Whether the source uses the name: the word itself, or each of its capitalised parts.

    Parts let ``Gartner's`` and ``Zurich-based`` count as known when the source says
    ``Gartner`` and ``Zurich``.
    """
    if word.casefold() in vocabulary:
        return True
    names = [part for part in _WORD_PARTS.split(word) if part and part[0].isupper()]
    return bool(names) and all(part.casefold() in vocabulary for part in names)


def _listing(items: list[str]) -> str:
    """The first few items, comma-separated, with a count of the rest."""
    shown = ", ".join(items[:MAX_SHOWN])
    rest = len(items) - MAX_SHOWN
    return f"{shown} (+{rest} more)" if rest > 0 else shown


def _plural(count: int, noun: str) -> str:
    """``1 bullet line``, ``4 bullet lines``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
