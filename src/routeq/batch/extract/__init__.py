"""Per-format text extraction for batch inputs: bytes in, plain text out, or a reason why not.

:mod:`routeq.batch.ingest` decides which file is which format and accounts for every input;
the modules here only turn one file's content into text: :mod:`.encoding` (bytes to str),
:mod:`.html_text`, :mod:`.rst_text`, :mod:`.pdf_text` and :mod:`.docx_text`. Each raises
:class:`ExtractionError` with a message that says what is wrong and how to fix it; the caller
prefixes the file name, so the message reads well in a rejected document's row.
"""

from __future__ import annotations

__all__ = ["ExtractionError", "normalize_text"]


class ExtractionError(ValueError):
    """A file's content cannot be turned into text; the message gives the reason and a fix.

    A ValueError, so callers that already treat undecodable input as bad input catch it too.
    """


def normalize_text(text: str) -> str:
    """Normalise newlines to ``\\n``, strip trailing whitespace per line and blank edge lines.

    Only whitespace that carries no meaning is touched: leading indentation (Markdown code blocks
    and nested lists) and inner spacing (aligned plain-text tables) are kept. A Markdown hard
    break written as two trailing spaces becomes a plain line break, which a summary never needs.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
