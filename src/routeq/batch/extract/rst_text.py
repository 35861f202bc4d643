"""reStructuredText to plain text, the way a reader sees the rendered page.

Most Python package descriptions (and many project READMEs) are reStructuredText. Summarised
raw, their markup is noise that costs tokens and confuses the model: ``.. image::`` badges,
``.. contents::`` tables, ``:func:`x``` roles, ``.. _target:`` lines, ``|substitutions|``.
docutils, the reference implementation, parses the text into a document tree, and the tree is
written out here as plain text: headings, paragraphs, ``-`` bullets, numbered lists, literal
blocks verbatim, tables with tab-separated cells, admonitions as ``Note: ...``.

Parsing is locked down, since a batch input is untrusted: no ``include`` or ``raw`` directive
(no reading other files), no docutils configuration files, no messages on stderr. Markup
docutils does not know (Sphinx's ``:func:`` roles, ``.. toctree::``) is reduced to its text or
dropped rather than shown as an error.
"""

from __future__ import annotations

import io
import re
from typing import Any, Final

from docutils import nodes
from docutils.core import publish_doctree
from docutils.utils import SystemMessage

from routeq.batch.extract import ExtractionError, normalize_text

__all__ = ["rst_to_text"]

_SETTINGS: Final[dict[str, Any]] = {
    "file_insertion_enabled": False,  # `.. include:: /etc/passwd` must not read files
    "raw_enabled": False,
    "_disable_config": True,  # no docutils.conf from the working or home directory
    "report_level": 5,  # record problems in the tree, print none
    "halt_level": 5,  # never stop at an error: unknown markup is common in READMEs
    "warning_stream": io.StringIO(),
    "syntax_highlight": "none",  # code stays one text node; no Pygments pass
    "input_encoding": "unicode",
}

_SKIPPED: Final = (
    nodes.comment,
    nodes.system_message,
    nodes.substitution_definition,
    nodes.target,
    nodes.raw,
    nodes.pending,
    nodes.image,
    nodes.transition,
    nodes.decoration,
)
"""Nodes that are markup, not text: comments, problems, link targets, images."""
_NOTE_REFERENCES: Final = (nodes.footnote_reference, nodes.citation_reference)
_NOTE_MARK: Final = "\x00"
_BEFORE_NOTE: Final = re.compile(r"\s*\x00")

_VERBATIM: Final = (nodes.literal_block, nodes.doctest_block, nodes.math_block)
_ROLE: Final = re.compile(r"^(?::[\w.+-]+:)?`(?P<text>.*)`(?::[\w.+-]+:)?$", re.DOTALL)
_EXPLICIT_TITLE: Final = re.compile(r"^(?P<title>.+?)\s*<[^<>]+>$", re.DOTALL)
_SPACE: Final = re.compile(r"[ \t]*\n[ \t]*")


def rst_to_text(source: str) -> tuple[str, str | None]:
    """Plain text of a reStructuredText document and its title: ``(text, title or None)``.

    The title (a lone top-level section title, promoted by docutils) stays in the text as its
    first line, since it is part of what the author wrote, and also goes to metadata.
    Raises :class:`ExtractionError` if docutils cannot parse the text at all.
    """
    try:
        document = publish_doctree(source, settings_overrides=dict(_SETTINGS))
    except (SystemMessage, ValueError, TypeError, AttributeError, IndexError) as error:
        raise ExtractionError(
            f"cannot parse the reStructuredText ({error}); fix the markup or save it as .txt"
        ) from None
    title = document.get("title") or None
    text = "\n\n".join(block for block in _blocks(document) if block.strip())
    return normalize_text(text), title


def _blocks(node: nodes.Node) -> list[str]:
    """The text blocks (paragraph-like, separated by blank lines) a node renders to."""
    if isinstance(node, _SKIPPED):
        return []
    if isinstance(node, nodes.topic) and "contents" in node.get("classes", []):
        return []  # a generated table of contents repeats the headings
    if isinstance(node, nodes.Text):
        return [str(node)] if str(node).strip() else []
    if isinstance(node, _VERBATIM):
        return [node.astext()]
    if isinstance(node, nodes.line_block):
        return ["\n".join(_inline(line) for line in node.findall(nodes.line))]
    if isinstance(node, nodes.bullet_list):
        return ["\n".join(_item("- ", item) for item in _children(node))]
    if isinstance(node, nodes.enumerated_list):
        start = int(node.get("start", 1))
        items = _children(node)
        return ["\n".join(_item(f"{start + i}. ", item) for i, item in enumerate(items))]
    if isinstance(node, nodes.definition_list):
        return ["\n".join(_definition(item) for item in _children(node))]
    if isinstance(node, nodes.field_list | nodes.docinfo):
        return ["\n".join(_field(field) for field in _children(node))]
    if isinstance(node, nodes.option_list):
        return ["\n".join(_inline(item) for item in _children(node))]
    if isinstance(node, nodes.table):
        return [_table(node)]
    if isinstance(node, nodes.Admonition):
        return _admonition(node)
    if isinstance(node, nodes.footnote | nodes.citation):
        labels = [child.astext() for child in _children(node) if isinstance(child, nodes.label)]
        body = [block for child in _children(node) for block in _blocks(child)]
        if labels and body:
            body[0] = f"[{labels[0]}] {body[0]}"
        return body
    if isinstance(node, nodes.label):
        return []  # written by the footnote itself
    if isinstance(node, nodes.TextElement):  # paragraph, title, rubric, caption, ...
        text = _inline(node)
        return [text] if text.strip() else []
    return [block for child in _children(node) for block in _blocks(child)]


def _children(node: nodes.Node) -> list[nodes.Node]:
    return list(node.children) if isinstance(node, nodes.Element) else []


def _inline(node: nodes.Node) -> str:
    """The text of an inline run, markup removed, source line breaks kept as spaces."""
    if isinstance(node, _SKIPPED):
        return ""
    if isinstance(node, nodes.Text):
        return str(node)
    if isinstance(node, nodes.problematic):
        return _unknown_markup(node.astext())
    if isinstance(node, _NOTE_REFERENCES):
        return _NOTE_MARK  # removed with the space before it: "speed [1]_." reads "speed."
    text = "".join(_inline(child) for child in _children(node))
    if isinstance(node, nodes.TextElement) and not isinstance(node, nodes.Inline):
        text = _BEFORE_NOTE.sub("", _SPACE.sub(" ", text)).strip()
    return text


def _unknown_markup(raw: str) -> str:
    """The text of markup docutils could not resolve, without the markup.

    Sphinx roles (``:func:`~pkg.run```, ``:ref:`Install <install>```) give their text or
    title; an undefined ``|substitution|`` or a broken reference gives nothing.
    """
    match = _ROLE.match(raw)
    if match is None:
        return "" if raw.startswith("|") and raw.endswith("|") else raw.rstrip("_")
    text = match.group("text")
    explicit = _EXPLICIT_TITLE.match(text)
    if explicit is not None:
        return explicit.group("title")
    return text.lstrip("~!")


def _item(marker: str, item: nodes.Node) -> str:
    """A list item: the marker, then its blocks, continuation lines indented under the text."""
    indent = " " * len(marker)
    lines = "\n\n".join(_blocks(item)).split("\n")
    return marker + lines[0] + "".join(f"\n{indent}{line}" if line else "\n" for line in lines[1:])


def _definition(item: nodes.Node) -> str:
    """A definition list item: the term on its line, the definition indented below it."""
    term = " : ".join(
        _inline(child)
        for child in _children(item)
        if isinstance(child, nodes.term | nodes.classifier)
    )
    definition = [
        block
        for child in _children(item)
        if isinstance(child, nodes.definition)
        for block in _blocks(child)
    ]
    body = "\n\n".join(definition).replace("\n", "\n    ")
    return f"{term}\n    {body}" if body else term


def _field(field: nodes.Node) -> str:
    """A field (``:Author: Jane``) as ``Author: Jane``; docinfo fields such as ``author``
    are elements of their own."""
    if isinstance(field, nodes.field):
        parts = _children(field)
        name = " ".join(_inline(part) for part in parts if isinstance(part, nodes.field_name))
        value = " ".join(
            block for part in parts if isinstance(part, nodes.field_body) for block in _blocks(part)
        )
        return f"{name}: {value}".strip()
    return f"{field.tagname.capitalize()}: {_inline(field)}"


def _table(table: nodes.Node) -> str:
    """A table as lines of tab-separated cells, as HTML tables are written."""
    rows = []
    for row in table.findall(nodes.row):
        cells = [" ".join(_blocks(entry)) for entry in _children(row)]
        rows.append("\t".join(_SPACE.sub(" ", cell).strip() for cell in cells))
    return "\n".join(rows)


def _admonition(node: nodes.Element) -> list[str]:
    """``.. note::`` and friends as ``Note: ...``; a generic admonition uses its own title."""
    title = next((child for child in node.children if isinstance(child, nodes.title)), None)
    label = _inline(title) if title is not None else node.tagname.capitalize()
    body = [
        block
        for child in node.children
        if not isinstance(child, nodes.title)
        for block in _blocks(child)
    ]
    if not body:
        return [label]
    body[0] = f"{label}: {body[0]}"
    return body
