"""The main text of an HTML page: visible text, without navigation, footers and cookie banners.

A saved web page carries a site's chrome around its content: menus, breadcrumbs, a cookie
consent banner, sidebars of related links, a footer of legal links. Summarised with the
content, it wastes tokens and leaks into the summary ("the page offers Home, Pricing, Careers").

The standard library's HTML parser does the work, in two steps. Parsing records the page's
text as rendering events (text, line breaks, cell tabs), each tagged with the regions it sits
in; rendering then keeps the events of the content. What counts as chrome comes from the
markup's own statements first: ``<nav>``, ``<aside>``, ``<footer>``, ``<dialog>``, a page-level
``<header>``, ARIA landmark roles (``navigation``, ``banner``, ``contentinfo``, ...), the
``hidden`` attribute, and cookie/consent names in ``class``/``id``. Then naming conventions
that are only a guess (``class="sidebar"``, ``breadcrumbs``, ``newsletter``, ...), which is
overruled when the element holds the page's ``<main>``/``<article>`` or most of its text (a
wrapper ``<div class="has-sidebar">``). ``<main>`` (or ``<article>``), when present and not
tiny, narrows the text to it.

Library extractors were weighed: trafilatura extracts well but brings some 16 packages (date
parsing, locale data) into the image; readability-lxml and jusText are light but drop lists and
tables (readability) or everything (jusText) on short pages, which would turn correctly read
pages into "empty document" rejections. Markup that says nothing (a page of bare ``<div>``) is
read whole, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Final

from routeq.batch.extract import normalize_text

__all__ = ["MIN_SCOPE_SHARE", "html_to_text"]

MIN_SCOPE_SHARE: Final = 1 / 3
"""``<main>``/``<article>`` text must be at least this share of the page's text (chrome
removed) to stand for the page; a ``<main>`` around a heading alone does not."""

GUESS_MAX_SHARE: Final = 0.5
"""An element dropped only by its class/id name is kept when it holds more than this share of
the page's text: it is a wrapper around the content, whatever its name says."""

_SKIPPED_ELEMENTS: Final = frozenset({"script", "style", "head", "template", "noscript"})
_HEAD_ELEMENTS: Final = frozenset(
    {"title", "meta", "link", "style", "script", "base", "noscript", "template"}
)
_PARAGRAPH_ELEMENTS: Final = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl",
        "section", "article", "header", "footer", "nav", "aside", "main", "figure", "hr", "form",
        "fieldset", "address", "details", "hgroup",
    }
)  # fmt: skip
_LINE_ELEMENTS: Final = frozenset(
    {"div", "br", "li", "tr", "dt", "dd", "figcaption", "summary", "caption", "legend", "option"}
)
_CELL_ELEMENTS: Final = frozenset({"td", "th"})

_CHROME_ELEMENTS: Final = frozenset({"nav", "aside", "footer", "dialog", "button", "search"})
"""Elements that are never a page's content, whatever their attributes."""
_REGION_ELEMENTS: Final = frozenset(
    {
        "div", "section", "aside", "nav", "header", "footer", "form", "ul", "ol", "dl", "dialog",
        "span", "table", "figure", "details", "search", "menu",
    }
)  # fmt: skip
"""Where roles, ``hidden`` and class/id names are believed: elements whose end tag HTML requires,
so a region ends where the page says (``<p>`` and ``<li>`` may end implicitly)."""
_CHROME_ROLES: Final = frozenset(
    {
        "navigation", "banner", "contentinfo", "complementary", "search", "dialog",
        "alertdialog", "menu", "menubar", "toolbar",
    }
)  # fmt: skip
_SECTIONING: Final = frozenset({"main", "article", "section"})
_CONSENT_NAMES: Final = re.compile(r"cookie|consent|gdpr|onetrust")
"""Consent managers name their banners in many ways (``cookie-banner``, ``CybotCookiebotDialog``,
``cmplz-consent``); any class or id containing these words is a consent banner."""
_CHROME_WORDS: Final = frozenset(
    {
        "nav", "navbar", "navigation", "subnav", "breadcrumb", "breadcrumbs", "footer",
        "sidebar", "newsletter", "social", "sharing", "sharedaddy", "advert", "advertisement",
        "ads", "adsbygoogle", "popup", "modal", "masthead", "comments", "related", "skiplinks",
        "search", "searchform", "pagination", "share",
    }
)  # fmt: skip
"""Words in class/id names that usually mark site chrome; only a guess (see GUESS_MAX_SHARE)."""
_CONTENT_WORDS: Final = frozenset({"content", "main", "article", "body", "post", "entry", "story"})
"""Words that mark content even next to a chrome word (``content-with-sidebar``)."""
_NAME_TOKEN: Final = re.compile(r"[a-z0-9]+")
_HTML_SPACE: Final = re.compile(r"\s+")
_BLANK_RUNS: Final = re.compile(r"\n{3,}")

_TEXT, _RAW, _BREAK, _CELL = range(4)
"""Rendering events: collapsible text, ``<pre>`` text, a line break (1 or 2 newlines), a tab
between table cells."""


@dataclass(frozen=True)
class _Context:
    """Where an event sits: the chrome regions around it, and whether inside main/article."""

    chrome: frozenset[int] = frozenset()
    main: bool = False
    article: bool = False


@dataclass
class _Region:
    """An open element that starts a region: chrome, a guessed chrome, main, article, section."""

    tag: str
    kind: str
    ident: int
    depth: int = 1
    """Open elements of the same tag from this one inward; the region ends when it drops to 0."""


@dataclass
class _Guess:
    """What is known, after parsing, about one element dropped by its class/id name alone."""

    chars: int = 0
    holds_content: bool = False


class _Parser(HTMLParser):
    """Records a page's text as rendering events tagged with their regions, and its title.

    Tolerant of sloppy markup the way browsers are: a missing ``</head>`` ends at the first
    element or text that cannot be in a head, so the body is not lost with it.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive already unescaped
        self.events: list[tuple[int, str | int, _Context]] = []
        self.chrome: set[int] = set()  # regions that are chrome for sure
        self.guesses: dict[int, _Guess] = {}  # regions that are chrome by name only
        self.chars = 0  # text characters outside skipped elements
        self.has_main = False
        self.has_article = False
        self._regions: list[_Region] = []
        self._next_ident = 0
        self._context = _Context()
        self._skipping: list[str] = []  # open elements whose content is dropped
        self._pre = 0
        self._in_title = False
        self._title: list[str] = []

    def title(self) -> str | None:
        """The ``<title>``, whitespace collapsed, or None."""
        return " ".join("".join(self._title).split()) or None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping and self._skipping[-1] == "head" and tag not in _HEAD_ELEMENTS:
            self._skipping.pop()
        if tag in _SKIPPED_ELEMENTS:
            self._skipping.append(tag)
            return
        if tag == "title":
            self._in_title = True
            return
        self._enter(tag, dict(attrs))
        if not self._skipping:
            if tag in _CELL_ELEMENTS:
                self._emit(_CELL, "")
            self._block_boundary(tag)
            if tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS:
            if tag in self._skipping:
                index = len(self._skipping) - 1 - self._skipping[::-1].index(tag)
                del self._skipping[index:]
            return
        if tag == "title":
            self._in_title = False
            return
        self._leave(tag)
        if not self._skipping and tag != "br":  # <br/> also calls this; one break is enough
            if tag == "pre" and self._pre:
                self._pre -= 1
            self._block_boundary(tag)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
            return
        if self._skipping == ["head"] and data.strip():
            self._skipping.pop()  # text cannot be in a head: the body started without <body>
        if self._skipping:
            return
        if self._pre:
            self._count(len(data))
            self._emit(_RAW, data)
            return
        text = _HTML_SPACE.sub(" ", data)
        self._count(len(text.strip()))
        self._emit(_TEXT, text)

    # -- regions -----------------------------------------------------------------------------

    def _enter(self, tag: str, attrs: dict[str, str | None]) -> None:
        for region in self._regions:
            if region.tag == tag:
                region.depth += 1
        kind = self._kind(tag, attrs)
        if kind is None:
            return
        ident = self._next_ident
        self._next_ident += 1
        self._regions.append(_Region(tag, kind, ident))
        if kind == "chrome":
            self.chrome.add(ident)
        elif kind == "guess":
            self.guesses[ident] = _Guess()
        elif kind in ("main", "article"):
            self.has_main = self.has_main or kind == "main"
            self.has_article = self.has_article or kind == "article"
            for region in self._regions:
                if region.kind == "guess":
                    self.guesses[region.ident].holds_content = True
        self._update_context()

    def _leave(self, tag: str) -> None:
        closed = False
        for region in self._regions:
            if region.tag == tag:
                region.depth -= 1
                closed = closed or region.depth == 0
        if closed:
            self._regions = [region for region in self._regions if region.depth > 0]
            self._update_context()

    def _kind(self, tag: str, attrs: dict[str, str | None]) -> str | None:
        """The region this element starts: ``chrome``, ``guess``, ``main``, ``article``,
        ``section``, or None."""
        role = (attrs.get("role") or "").strip().lower()
        if tag == "main" or role == "main":
            return "main"
        if tag == "article" or role == "article":
            return "article"
        if tag in _CHROME_ELEMENTS:
            return "chrome"
        if tag == "header" and not any(r.kind in _SECTIONING for r in self._regions):
            return "chrome"  # the page's banner; a header inside an article is the article's
        if tag in _REGION_ELEMENTS:
            if "hidden" in attrs or role in _CHROME_ROLES:
                return "chrome"
            names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
            if _CONSENT_NAMES.search(names):
                return "chrome"
            words = set(_NAME_TOKEN.findall(names))
            if words & _CHROME_WORDS and not words & _CONTENT_WORDS:
                return "guess"
        return "section" if tag == "section" else None

    def _update_context(self) -> None:
        self._context = _Context(
            chrome=frozenset(r.ident for r in self._regions if r.kind in ("chrome", "guess")),
            main=any(r.kind == "main" for r in self._regions),
            article=any(r.kind == "article" for r in self._regions),
        )

    # -- events ------------------------------------------------------------------------------

    def _count(self, chars: int) -> None:
        self.chars += chars
        for region in self._regions:
            if region.kind == "guess":
                self.guesses[region.ident].chars += chars

    def _emit(self, op: int, arg: str | int) -> None:
        self.events.append((op, arg, self._context))

    def _block_boundary(self, tag: str) -> None:
        if tag in _PARAGRAPH_ELEMENTS:
            self._emit(_BREAK, 2)
        elif tag in _LINE_ELEMENTS:
            self._emit(_BREAK, 1)


def _render(events: list[tuple[int, str | int, _Context]], keep: Callable[[_Context], bool]) -> str:
    """The text of the kept events: block boundaries as line breaks (at most one blank line in a
    row), table cells separated by tabs, whitespace collapsed except inside ``<pre>``."""
    out: list[str] = []
    last = "\n"  # last character written; "\n" at the start
    newlines = 0  # newlines at the end of what was written

    def write(text: str) -> None:
        nonlocal last, newlines
        out.append(text)
        last = text[-1]
        body = text.rstrip("\n")
        newlines = newlines + len(text) if not body else len(text) - len(body)

    for op, arg, context in events:
        if not keep(context):
            continue
        if op == _TEXT:
            text = str(arg)
            if last in " \t\n":
                text = text.lstrip(" ")
            if text:
                write(text)
        elif op == _RAW:
            if arg:
                write(str(arg))
        elif op == _BREAK:
            wanted = int(arg)
            if out and newlines < wanted:
                write("\n" * (wanted - newlines))
        elif last != "\n":  # _CELL
            write("\t")
    return _BLANK_RUNS.sub("\n\n", normalize_text("".join(out)))


def html_to_text(markup: str) -> tuple[str, str | None]:
    """The main text of an HTML document and its ``<title>``: ``(text, title or None)``.

    Drops ``script``, ``style``, ``head``, ``template`` and ``noscript`` content and the site
    chrome described in the module docstring; keeps only ``<main>`` (else the ``<article>``
    elements) when it holds at least :data:`MIN_SCOPE_SHARE` of the remaining text. Turns block
    elements (p, div, br, li, h1-h6, tr, ...) into line breaks and table cells into tabs;
    unescapes entities; collapses whitespace except inside ``<pre>``. When removing the chrome
    leaves nothing (a page that is all menu), the whole visible text is kept rather than lost.
    The title goes to metadata rather than the text, since it usually repeats the first heading.
    """
    parser = _Parser()
    parser.feed(markup)
    parser.close()
    dropped = parser.chrome | {
        ident
        for ident, guess in parser.guesses.items()
        if not guess.holds_content and guess.chars <= GUESS_MAX_SHARE * parser.chars
    }

    def content(context: _Context) -> bool:
        return not context.chrome & dropped

    def in_main(context: _Context) -> bool:
        return context.main and content(context)

    def in_article(context: _Context) -> bool:
        return context.article and content(context)

    page = _render(parser.events, content)
    for present, scope in ((parser.has_main, in_main), (parser.has_article, in_article)):
        if present:
            scoped = _render(parser.events, scope)
            if scoped and len(scoped) >= MIN_SCOPE_SHARE * len(page):
                return scoped, parser.title()
    if page:
        return page, parser.title()
    return _render(parser.events, lambda context: True), parser.title()
