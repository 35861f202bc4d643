"""Documents people have: reStructuredText, PDF and Word files become text, or a clear refusal.

Before, ``.rst`` (the format of most Python package descriptions), ``.pdf`` and ``.docx`` were
all rejected as unsupported file types. Fixtures are built here, in the test: no binaries are
committed.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject

from routeq.batch.ingest import Document, collect


def collect_one(path: Path) -> Document:
    documents = collect([path])
    assert len(documents) == 1, documents
    return documents[0]


def rejection(path: Path) -> str:
    document = collect_one(path)
    assert not document.ok, document.text
    assert document.rejected is not None
    assert document.rejected.startswith(f"{path}: "), document.rejected
    return document.rejected


# -- reStructuredText ------------------------------------------------------------------------------

PACKAGE_DESCRIPTION = """\
==========
 acme-api
==========

.. image:: https://img.shields.io/pypi/v/acme-api.svg
   :target: https://pypi.org/project/acme-api

|build| |coverage|

.. |build| image:: https://ci.example.com/acme-api/badge.svg
.. |coverage| image:: https://cov.example.com/acme-api/badge.svg

.. contents:: Table of contents

A Python client for the *Acme* REST API, with **retries** and `typed models
<https://acme-api.readthedocs.io/en/latest/models.html>`_. See :func:`~acme.connect` and
:ref:`the install guide <install>` [1]_.

.. code-block:: python

   import acme
   client = acme.connect(token="...")

.. note:: Python 3.10 or newer
   is required.

.. toctree::
   :maxdepth: 2

   install
   usage

.. _install:

Installation
------------

- ``pip install acme-api``
- or from source:
  ``pip install .``

#. Create a token.
#. Export it as ``ACME_TOKEN``.

Timeouts
   Ten seconds by default.

+---------+---------+
| Setting | Default |
+=========+=========+
| retries | 3       |
+---------+---------+

.. [1] The guide covers proxies too.

..
   A comment for maintainers only.
"""

PACKAGE_TEXT = """\
acme-api

A Python client for the Acme REST API, with retries and typed models. See acme.connect and \
the install guide.

import acme
client = acme.connect(token="...")

Note: Python 3.10 or newer is required.

Installation

- pip install acme-api
- or from source: pip install .

1. Create a token.
2. Export it as ACME_TOKEN.

Timeouts
    Ten seconds by default.

Setting\tDefault
retries\t3

[1] The guide covers proxies too."""


def test_restructuredtext_becomes_plain_text_without_markup(tmp_path: Path) -> None:
    path = tmp_path / "README.rst"
    path.write_text(PACKAGE_DESCRIPTION, encoding="utf-8")
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.format == "rst"
    assert document.text == PACKAGE_TEXT
    assert document.metadata == {
        "encoding": "utf-8",
        "bytes": len(PACKAGE_DESCRIPTION.encode()),
        "title": "acme-api",
    }


def test_restructuredtext_cannot_include_other_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("API_KEY=sk-do-not-send", encoding="utf-8")
    path = tmp_path / "evil.rst"
    path.write_text(
        f"Intro.\n\n.. include:: {secret}\n\n.. raw:: html\n   :file: {secret}\n\n"
        f".. csv-table:: t\n   :file: {secret}\n",
        encoding="utf-8",
    )
    document = collect_one(path)
    assert document.text == "Intro."


def test_restructuredtext_with_only_markup_is_an_empty_document(tmp_path: Path) -> None:
    path = tmp_path / "badges.rst"
    path.write_text(".. image:: https://example.com/b.svg\n\n.. a comment\n", encoding="utf-8")
    assert "empty document (no text left after removing the markup)" in rejection(path)


# -- PDF -------------------------------------------------------------------------------------------


def make_pdf(
    pages: list[str | None],
    *,
    title: str | None = None,
    user_password: str | None = None,
    owner_password: str | None = None,
) -> bytes:
    """A PDF with one page per item: its lines as real text (Helvetica), or, for None, a
    page that is only an image, like a scan."""
    writer = PdfWriter()
    for lines in pages:
        page = writer.add_blank_page(width=595, height=842)
        content = DecodedStreamObject()
        if lines is None:
            image = DecodedStreamObject()
            image.set_data(bytes(range(64)))
            image.update(
                {
                    NameObject("/Type"): NameObject("/XObject"),
                    NameObject("/Subtype"): NameObject("/Image"),
                    NameObject("/Width"): NumberObject(8),
                    NameObject("/Height"): NumberObject(8),
                    NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                    NameObject("/BitsPerComponent"): NumberObject(8),
                }
            )
            resources = {"/XObject": {"/Im1": image}}
            content.set_data(b"q 595 0 0 842 0 0 cm /Im1 Do Q")
        else:
            font = {
                "/Type": "/Font",
                "/Subtype": "/Type1",
                "/BaseFont": "/Helvetica",
                "/Encoding": "/WinAnsiEncoding",
            }
            resources = {"/Font": {"/F1": font}}
            shown = "".join(f"({_pdf_string(line)}) Tj T* " for line in lines.split("\n"))
            content.set_data(f"BT /F1 12 Tf 14 TL 72 770 Td {shown}ET".encode("cp1252"))
        page[NameObject("/Resources")] = _pdf_object(writer, resources)
        page[NameObject("/Contents")] = writer._add_object(content)
    if title is not None:
        writer.add_metadata({"/Title": title})
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password=owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf_object(writer: PdfWriter, value: object) -> object:
    """Nested dicts of names into PDF dictionaries; streams become indirect objects."""
    if isinstance(value, DecodedStreamObject):
        return writer._add_object(value)
    if isinstance(value, dict):
        return DictionaryObject(
            {NameObject(key): _pdf_object(writer, item) for key, item in value.items()}
        )
    assert isinstance(value, str) and value.startswith("/")
    return NameObject(value)


def test_pdf_text_layer_is_extracted_page_by_page(tmp_path: Path) -> None:
    path = tmp_path / "report.PDF"
    path.write_bytes(
        make_pdf(
            ["Quarterly report", None, "Revenue grew 12% (to 4.1m).\nCosts fell by 3%."],
            title="Q3  report",
        )
    )
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.format == "pdf"
    assert document.text == "Quarterly report\n\nRevenue grew 12% (to 4.1m).\nCosts fell by 3%."
    assert document.metadata == {"bytes": path.stat().st_size, "pages": 3, "title": "Q3 report"}


def test_a_scanned_pdf_without_text_is_rejected_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([None, None]))
    reason = rejection(path)
    assert "the PDF has 2 pages but no text layer, as scanned documents do" in reason
    assert "run OCR on it first" in reason


def test_a_password_protected_pdf_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(make_pdf(["Secret plans"], user_password="hunter2"))
    assert "the PDF is password-protected; remove the password" in rejection(path)


def test_a_pdf_encrypted_only_against_printing_is_read(tmp_path: Path) -> None:
    path = tmp_path / "owner.pdf"
    path.write_bytes(make_pdf(["Open to read"], user_password="", owner_password="owner"))
    assert collect_one(path).text == "Open to read"


def test_a_broken_pdf_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog")
    assert "cannot read the PDF" in rejection(path)


# -- Word ------------------------------------------------------------------------------------------


def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Travel policy"
    document.sections[0].header.paragraphs[0].text = "ACME Ltd - internal"
    document.add_heading("Travel policy", level=1)
    document.add_paragraph("Book trains for trips under 500 km.")
    document.add_paragraph("Economy class only", style="List Bullet")
    document.add_paragraph("Receipts within 30 days", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Item"
    table.cell(0, 1).text = "Limit"
    table.cell(1, 0).merge(table.cell(1, 1)).text = "Hotels: ask your manager"
    document.add_paragraph("")
    document.add_paragraph("Questions go to finance.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_body_paragraphs_lists_and_tables_are_extracted(tmp_path: Path) -> None:
    path = tmp_path / "policy.docx"
    path.write_bytes(make_docx())
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.format == "docx"
    assert document.text == (
        "Travel policy\n\n"
        "Book trains for trips under 500 km.\n\n"
        "- Economy class only\n\n"
        "- Receipts within 30 days\n\n"
        "Item\tLimit\n"
        "Hotels: ask your manager\n\n"
        "Questions go to finance."
    )  # the page header ("ACME Ltd - internal") is left out
    assert document.metadata == {"bytes": path.stat().st_size, "title": "Travel policy"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xd0\xcf\x11\xe0 an old binary .doc renamed", "not a Word .docx file"),
        (None, "cannot read the Word document"),
    ],
)
def test_a_file_that_is_not_a_word_document_is_rejected(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    if content is None:  # a zip, but not a Word package
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("notes.txt", "hello")
        content = buffer.getvalue()
    path = tmp_path / "letter.docx"
    path.write_bytes(content)
    assert expected in rejection(path)


def test_a_docx_that_would_unpack_past_the_limit_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from routeq.batch.extract import docx_text

    monkeypatch.setattr(docx_text, "MAX_UNPACKED_BYTES", 1_000_000)  # 200 MB in real life
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b" " * 2_000_000)  # a few KiB zipped
    path = tmp_path / "bomb.docx"
    path.write_bytes(buffer.getvalue())
    assert path.stat().st_size < 10_000
    assert "would unpack to 2,000,000 bytes, over the limit of 1,000,000" in rejection(path)
