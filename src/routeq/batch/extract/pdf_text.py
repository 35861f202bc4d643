"""The text layer of a PDF, page by page, with pypdf (pure Python, no system libraries).

A PDF made from a word processor or a browser carries its text; a scanned one carries only
page images, and nothing can be summarised from it without OCR, which routeq does not do.
Such a file is rejected with that explanation rather than as an "empty document".
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any, Final

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

from routeq.batch.extract import ExtractionError, normalize_text

__all__ = ["pdf_to_text"]

_BLANK_RUNS: Final = re.compile(r"\n{3,}")
_PYPDF_LOGGER: Final = logging.getLogger("pypdf")


def pdf_to_text(data: bytes) -> tuple[str, dict[str, Any]]:
    """The text of a PDF's pages, blank-line separated, and metadata (``pages``, ``title``).

    Raises :class:`ExtractionError` for a file pypdf cannot read, a password-protected one, and
    one whose pages hold no text (a scan), each with what to do about it.
    """
    level = _PYPDF_LOGGER.level
    _PYPDF_LOGGER.setLevel(logging.ERROR)  # its warnings on sloppy files would flood stderr
    try:
        reader = _open(data)
        pages = [_page_text(page) for page in reader.pages]
        title = _title(reader)
    except ExtractionError:
        raise
    except FileNotDecryptedError:
        raise _protected() from None
    except (PyPdfError, ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise ExtractionError(
            f"cannot read the PDF ({type(error).__name__}: {error}); re-export it, or save it "
            "as text"
        ) from None
    except RecursionError:
        raise ExtractionError(
            "cannot read the PDF (its objects are nested too deeply); re-export it"
        ) from None
    finally:
        _PYPDF_LOGGER.setLevel(level)
    text = _BLANK_RUNS.sub("\n\n", normalize_text("\n\n".join(page for page in pages if page)))
    if not text.strip():
        count = f"{len(pages)} page{'' if len(pages) == 1 else 's'}"
        raise ExtractionError(
            f"the PDF has {count} but no text layer, as scanned documents do (images of text); "
            "run OCR on it first (e.g. `ocrmypdf in.pdf out.pdf`) or export it as text"
        )
    metadata: dict[str, Any] = {"pages": len(pages)}
    if title:
        metadata["title"] = title
    return text, metadata


def _open(data: bytes) -> PdfReader:
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:  # many PDFs are encrypted with an empty user password: readable, not printable
            opened = reader.decrypt("")
        except (PyPdfError, NotImplementedError):  # e.g. AES without a crypto library
            raise _protected() from None
        if not opened:
            raise _protected()
    return reader


def _page_text(page: Any) -> str:
    text = page.extract_text() or ""
    return normalize_text(str(text))


def _title(reader: PdfReader) -> str | None:
    try:
        info = reader.metadata
    except (PyPdfError, ValueError, TypeError, KeyError):
        return None
    title = info.title if info is not None else None
    return " ".join(str(title).split()) or None if title else None


def _protected() -> ExtractionError:
    return ExtractionError(
        "the PDF is password-protected; remove the password (e.g. `qpdf --decrypt "
        "--password=PASSWORD in.pdf out.pdf`) or export it as text"
    )
