"""The body text of a Word ``.docx`` file, with python-docx: paragraphs and tables, in order.

Page headers and footers (page numbers, a company letterhead) are left out, as site chrome is
for HTML. List items become ``- `` lines and table rows tab-separated cells, as elsewhere in
routeq's extraction. The legacy binary ``.doc`` format is not read.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any, Final

import docx
from docx.opc.exceptions import OpcError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml.etree import LxmlError

from routeq.batch.extract import ExtractionError, normalize_text

__all__ = ["MAX_UNPACKED_BYTES", "docx_to_text"]

MAX_UNPACKED_BYTES: Final = 200_000_000
"""Largest total size of the document's parts once unzipped: a few KiB of zip can claim
gigabytes (a zip bomb), and the XML is parsed in memory."""


def docx_to_text(data: bytes) -> tuple[str, dict[str, Any]]:
    """The text of a ``.docx`` body and metadata (``title`` when the document sets one).

    Raises :class:`ExtractionError` for a file that is not a Word document (another zip, a
    renamed ``.doc``) or that would unpack to more than :data:`MAX_UNPACKED_BYTES`.
    """
    _check_unpacked_size(data)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [_block(item) for item in document.iter_inner_content()]
        title = document.core_properties.title
    except (
        OpcError,  # not a Word package: a spreadsheet or presentation renamed, a bare zip
        LxmlError,  # malformed XML inside
        ValueError,
        KeyError,
        zipfile.BadZipFile,
        AttributeError,
        TypeError,
    ) as error:
        raise ExtractionError(
            f"cannot read the Word document ({type(error).__name__}: {error}); open and re-save "
            "it as .docx, or save it as text"
        ) from None
    text = normalize_text("\n\n".join(block for block in blocks if block.strip()))
    metadata: dict[str, Any] = {}
    if title and title.strip():
        metadata["title"] = " ".join(title.split())
    return text, metadata


def _check_unpacked_size(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        raise ExtractionError(
            "not a Word .docx file (not a zip archive; an old binary .doc?); save it as .docx "
            "or as text"
        ) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise ExtractionError(
            f"the Word document would unpack to {unpacked:,} bytes, over the limit of "
            f"{MAX_UNPACKED_BYTES:,}; save it as text"
        )


def _block(item: Paragraph | Table) -> str:
    if isinstance(item, Table):
        return _table(item)
    text = item.text
    style = (item.style.name or "") if item.style is not None else ""
    if text.strip() and style.startswith("List"):
        return f"- {text}"
    return text


def _table(table: Table) -> str:
    """Rows of tab-separated cells; a merged cell, which python-docx repeats, appears once."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: list[object] = []
        for cell in row.cells:
            if any(cell._tc is other for other in seen):
                continue
            seen.append(cell._tc)
            cells.append(" ".join(cell.text.split()))
        rows.append("\t".join(cells))
    return "\n".join(rows)
