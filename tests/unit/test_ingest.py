"""Unit tests for routeq.batch.ingest: every input becomes a document or a reasoned rejection."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from routeq.batch.ingest import (
    Document,
    collect,
    decode_bytes,
    hash_text,
    html_to_text,
    normalize_text,
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def only(documents: list[Document]) -> Document:
    assert len(documents) == 1, documents
    return documents[0]


def rejected(document: Document) -> str:
    assert not document.ok, document
    assert document.text is None
    assert document.content_hash is None
    assert document.rejected is not None
    return document.rejected


# --- inputs: directories, files, patterns ---------------------------------------------------


def test_directory_walk_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "b.txt", "bee")
    write(root / "a.txt", "ay")
    write(root / "reports" / "q3.md", "# Q3")
    write(root / "reports" / "deep" / "z.txt", "zed")
    write(root / ".hidden.txt", "secret")
    write(root / ".git" / "config", "[core]")
    write(root / "reports" / ".draft.md", "draft")

    documents = collect([root])

    assert [d.doc_id for d in documents] == [
        "a.txt",
        "b.txt",
        "reports/deep/z.txt",
        "reports/q3.md",
    ]
    assert all(d.ok for d in documents)
    assert documents[3].source == str(root / "reports" / "q3.md")
    assert documents[3].format == "markdown"


def test_collect_is_deterministic(tmp_path: Path) -> None:
    for name in ["c.txt", "a/b.txt", "a.md", "x/y/z.html"]:
        write(tmp_path / name, f"<p>{name}</p>")
    assert collect([tmp_path]) == collect([tmp_path])


def test_file_input_keeps_the_path_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "docs" / "q3.md", "text")
    monkeypatch.chdir(tmp_path)
    document = only(collect(["docs/q3.md"]))
    assert document.ok
    assert document.doc_id == "docs/q3.md"
    assert document.source == "docs/q3.md"


def test_glob_patterns_recursive_and_single_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "docs" / "a.md", "a")
    write(tmp_path / "docs" / "sub" / "b.md", "b")
    write(tmp_path / "docs" / "sub" / "c.txt", "c")
    write(tmp_path / "docs" / ".hidden" / "d.md", "d")
    write(tmp_path / "n1.txt", "1")
    write(tmp_path / "n2.txt", "2")
    write(tmp_path / "n10.txt", "10")
    monkeypatch.chdir(tmp_path)

    assert [d.doc_id for d in collect(["docs/**/*.md"])] == ["docs/a.md", "docs/sub/b.md"]
    assert [d.doc_id for d in collect(["n?.txt"])] == ["n1.txt", "n2.txt"]
    # "**" matches directories and their files; each file is still collected once.
    assert [d.doc_id for d in collect(["docs/**"])] == [
        "docs/a.md",
        "docs/sub/b.md",
        "docs/sub/c.txt",
    ]


@pytest.mark.parametrize("name", ["nope.txt", "missing/*.md"])
def test_missing_path_or_unmatched_pattern_is_rejected(tmp_path: Path, name: str) -> None:
    given = str(tmp_path / name)
    document = only(collect([given]))
    reason = rejected(document)
    assert "no such file or directory, and no file matches it as a pattern" in reason
    assert given in reason
    assert document.doc_id == given
    assert document.source == given


def test_a_single_string_is_refused_rather_than_iterated(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        collect(str(tmp_path))
    with pytest.raises(ValueError):
        collect([tmp_path], max_bytes=0)


# --- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.txt", "text"), ("a.TEXT", "text"), ("README", "text"), ("a.md", "markdown")],
)
def test_plain_formats_by_extension(tmp_path: Path, name: str, fmt: str) -> None:
    document = only(collect([write(tmp_path / name, "Hello\r\nworld  \n")]))
    assert document.ok
    assert document.format == fmt
    assert document.text == "Hello\nworld"
    assert document.metadata == {"encoding": "utf-8", "bytes": 15}


def test_markdown_is_kept_except_whitespace(tmp_path: Path) -> None:
    source = "# Title\n\n- item **bold**\n  - nested   \n\n```\n    code\n```\n\n\n"
    document = only(collect([write(tmp_path / "notes.markdown", source)]))
    assert document.format == "markdown"
    assert document.text == "# Title\n\n- item **bold**\n  - nested\n\n```\n    code\n```"


def test_html_is_stripped_to_text(tmp_path: Path) -> None:
    markup = """<!DOCTYPE html>
<html><head><title> Quarterly   report </title>
<style>p { color: red }</style><script>var s = "<p>not text</p>";</script></head>
<body><h1>Results &amp; outlook</h1><!-- a comment -->
<p>Revenue&nbsp;grew   &lt;10%&gt;   in Q3.</p><div>one<br>two<br/>three</div>
<ul><li>first</li><li>second</li></ul>
<table><tr><th>k</th><td>v</td></tr><tr><td>1</td><td>2</td></tr></table>
<script>alert("x")</script><p>caf&eacute; &#8220;quoted&#x201D;</p></body></html>"""
    document = only(collect([write(tmp_path / "report.htm", markup)]))
    assert document.ok
    assert document.format == "html"
    assert document.text == (
        "Results & outlook\n\nRevenue grew <10%> in Q3.\n\none\ntwo\nthree\n\n"
        "first\nsecond\n\nk\tv\n1\t2\n\ncaf\u00e9 \u201cquoted\u201d"
    )
    assert document.metadata["title"] == "Quarterly report"


def test_html_without_closing_head_keeps_the_body() -> None:
    text, title = html_to_text("<html><head><title>T</title><p>Body text</p>")
    assert (text, title) == ("Body text", "T")


def test_html_pre_keeps_its_whitespace() -> None:
    text, _ = html_to_text("<p>Code:</p><pre>def f():\n    return 1</pre>")
    assert text == "Code:\n\ndef f():\n    return 1"


def test_jsonl_good_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "Alpha", "metadata": {"lang": "en"}}),
        json.dumps({"id": 7, "text": "Seven  \r\n"}),
        "",
        "   ",
        '{"id": "b", "text": ',
        json.dumps({"id": "c"}),
        json.dumps({"id": "d", "text": "   "}),
        json.dumps({"text": "no id"}),
        json.dumps({"id": True, "text": "bool id"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "e", "text": 5}),
        json.dumps({"id": "f", "text": "ok", "metadata": [1]}),
    ]
    path = write(tmp_path / "data.jsonl", "\n".join(lines) + "\n")

    documents = collect([path])

    assert len(documents) == 10  # 12 lines, two blank
    assert [d.source for d in documents] == [
        f"{path}:{n}" for n in (1, 2, 5, 6, 7, 8, 9, 10, 11, 12)
    ]
    assert all(d.format == "jsonl" for d in documents)
    alpha, seven, *bad = documents
    assert (alpha.doc_id, alpha.text, alpha.metadata) == ("a", "Alpha", {"lang": "en"})
    assert (seven.doc_id, seven.text, seven.metadata) == ("7", "Seven", {})
    reasons = [rejected(d) for d in bad]
    expected = [
        "invalid JSON",
        "missing 'text'",
        "empty document",
        "missing 'id'",
        "'id' must be a string or an integer, got a boolean",
        "expected a JSON object",
        "'text' must be a string, got a number",
        "'metadata' must be a JSON object",
    ]
    for reason, document, needle in zip(reasons, bad, expected, strict=True):
        assert needle in reason
        assert reason.startswith(f"{document.source}: ")
    # A record with a usable id keeps it even when rejected, so the user can find it.
    assert [d.doc_id for d in bad][:2] == [f"{path}:5", "c"]


def test_jsonl_without_records_is_one_rejected_document(tmp_path: Path) -> None:
    document = only(collect([write(tmp_path / "empty.jsonl", "\n  \n")]))
    assert "empty document" in rejected(document)


# --- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["letter.DOC", "sheet.odt"])
def test_unsupported_extension_is_rejected(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, b"\xd0\xcf\x11\xe0 binary office file")
    document = only(collect([path]))
    reason = rejected(document)
    assert f"unsupported file type {path.suffix.lower()!r}; supported: " in reason
    assert ".md" in reason and ".jsonl" in reason
    assert ".rst" in reason and ".pdf" in reason and ".docx" in reason
    assert str(path) in reason
    assert document.format == "unknown"


def test_binary_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "blob.txt", b"abc\x00\x01\x02" * 10)
    reason = rejected(only(collect([path])))
    assert "binary" in reason
    assert str(path) in reason


def test_oversized_file_is_rejected_with_size_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "big.txt", "x" * 50)
    reason = rejected(only(collect([path], max_bytes=10)))
    assert "50 bytes" in reason
    assert "limit of 10 bytes" in reason
    assert only(collect([path], max_bytes=50)).ok


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_byte_order_marks_are_honoured(tmp_path: Path, codec: str) -> None:
    text = "h\u00e9llo w\u00f6rld \u20ac"
    data = text.encode(codec)
    if codec in ("utf-16-le", "utf-16-be"):
        data = "\ufeff".encode(codec) + data
    document = only(collect([write(tmp_path / "u.txt", data)]))
    assert document.ok, document.rejected
    assert document.text == text


def test_cp1252_file_is_decoded(tmp_path: Path) -> None:
    text = "caf\u00e9 \u201cquoted\u201d \u20ac5"
    document = only(collect([write(tmp_path / "legacy.txt", text.encode("cp1252"))]))
    assert document.ok
    assert document.text == text
    assert document.metadata["encoding"] == "cp1252"


def test_undecodable_bytes_are_rejected_naming_the_file(tmp_path: Path) -> None:
    # Invalid UTF-8, and 0x81/0x8d are undefined in Windows-1252.
    path = write(tmp_path / "mystery.txt", b"abc \x81\x8d def")
    reason = rejected(only(collect([path])))
    assert reason.startswith(f"cannot detect the text encoding of {path} (not UTF-8")
    assert "convert it to UTF-8" in reason


def test_html_meta_charset_is_used_before_the_cp1252_guess(tmp_path: Path) -> None:
    body = "\u65e5\u672c\u8a9e\u306e\u6587\u66f8"
    markup = (
        b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
        b"</head><body><p>" + body.encode("shift_jis") + b"</p></body></html>"
    )
    document = only(collect([write(tmp_path / "ja.html", markup)]))
    assert document.text == body
    assert document.metadata["encoding"] == "shift_jis"


def test_declared_latin1_is_read_as_windows_1252_like_browsers() -> None:
    text, codec = decode_bytes(b'<meta charset="iso-8859-1"><p>\x93hi\x94</p>', html=True)
    assert codec == "cp1252"
    assert "\u201chi\u201d" in text


@pytest.mark.parametrize(
    ("name", "content"),
    [("blank.txt", " \n\t\n"), ("zero.md", ""), ("script.html", "<script>x()</script>")],
)
def test_empty_document_is_rejected(tmp_path: Path, name: str, content: str) -> None:
    path = write(tmp_path / name, content)
    reason = rejected(only(collect([path])))
    assert reason.startswith(f"{path}: empty document")


def test_duplicate_ids_reject_the_later_document(tmp_path: Path) -> None:
    first = write(tmp_path / "one" / "notes.txt", "first")
    second = write(tmp_path / "two" / "notes.txt", "second")
    records = "\n".join(json.dumps({"id": "x", "text": t}) for t in ["a", "b"])
    jsonl = write(tmp_path / "three" / "r.jsonl", records)

    documents = collect([tmp_path / "one", tmp_path / "two", jsonl])

    kept, duplicate, record, duplicate_record = documents
    assert kept.ok and kept.text == "first"
    assert duplicate.doc_id == "notes.txt"
    assert f"duplicate id 'notes.txt' (first seen in {first})" in rejected(duplicate)
    assert duplicate.source == str(second)
    assert record.ok
    assert f"duplicate id 'x' (first seen in {jsonl}:1)" in rejected(duplicate_record)


def test_rejected_record_does_not_claim_its_id(tmp_path: Path) -> None:
    records = [{"id": "x", "text": ""}, {"id": "x", "text": "fixed"}]
    path = write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in records))
    broken, fixed = collect([path])
    assert not broken.ok
    assert fixed.ok and fixed.text == "fixed"


def test_the_same_file_through_two_inputs_is_rejected_once(tmp_path: Path) -> None:
    path = write(tmp_path / "docs" / "a.txt", "a")
    documents = collect([tmp_path / "docs", path])
    assert documents[0].ok
    assert f"{path} was already collected from an earlier input" in rejected(documents[1])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_directory_is_reported_not_followed(tmp_path: Path) -> None:
    write(tmp_path / "real" / "a.txt", "a")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    document = only(collect([root]))
    assert document.doc_id == "link"
    assert "symbolic link to a directory" in rejected(document)


# --- hashing and accounting -------------------------------------------------------------------


def test_content_hash_ignores_trailing_whitespace_and_newline_style(tmp_path: Path) -> None:
    a = only(collect([write(tmp_path / "a.txt", "Hello  \r\nworld\t\r\n\r\n")]))
    b = only(collect([write(tmp_path / "b.txt", "Hello\nworld")]))
    c = only(collect([write(tmp_path / "c.txt", "Hello\nworld!")]))
    assert a.content_hash == b.content_hash == hashlib.sha256(b"Hello\nworld").hexdigest()
    assert a.content_hash != c.content_hash
    assert hash_text("Hello \rworld") == a.content_hash
    assert normalize_text("  indented  \n\n") == "  indented"


def test_document_invariants() -> None:
    document = Document(doc_id="d", source="s", text="Hi  ")
    assert document.ok
    assert document.content_hash == hash_text("Hi")
    with pytest.raises(ValueError):
        Document(doc_id="d", source="s", text=None)
    with pytest.raises(ValueError):
        Document(doc_id="d", source="s", text="t", rejected="why")


def test_every_input_is_accounted_for(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write(root / "a.txt", "text")
    write(root / "b.md", "# md")
    write(root / "c.html", "<p>html</p>")
    write(root / "d.pdf", b"%PDF")
    write(root / "e.txt", b"\x00binary")
    write(root / "f.txt", "   ")
    write(root / "g" / "h.txt", b"\xff\x81 bad")
    records = [json.dumps({"id": i, "text": f"r{i}"}) for i in range(3)] + ["", "{bad"]
    write(root / "r.jsonl", "\n".join(records))
    files = 8
    jsonl_records = 4  # non-blank lines

    documents = collect([root, tmp_path / "absent.txt"])

    assert len(documents) == files - 1 + jsonl_records + 1
    assert sum(d.ok for d in documents) == 3 + 3
    assert all(d.rejected for d in documents if not d.ok)
    assert len({d.source for d in documents}) == len(documents)
