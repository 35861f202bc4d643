"""Decode a text file's bytes: byte-order marks and UTF-8 first, then a legacy code page detector.

Most files are UTF-8 and are decided by the fast path without guessing. For the rest, a wrong
guess is worse than a refusal: a file in Windows-1251 (Russian) or Windows-1250 (Polish) decoded
as Windows-1252 is mojibake (``Ïðèâåò``, ``dzia³alnoœci``) that would still be summarised and
billed. So legacy text goes to `charset-normalizer`_ (a maintained detector that scores each
candidate decoding for "mess" and for how well its letters fit a language), limited to the three
Windows code pages that legacy European text actually comes in, and its answer is only taken
when the evidence holds up; otherwise the file is rejected with a message that says how to
convert it.

.. _charset-normalizer: https://charset-normalizer.readthedocs.io/
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

__all__ = ["LEGACY_CODECS", "decode_bytes"]

SNIFF_BYTES: Final = 8192
"""How much of a file the binary check and the ``<meta charset>`` scan look at."""

LEGACY_CODECS: Final = ("cp1252", "cp1250", "cp1251")
"""The code pages text is decoded from when it is not UTF-8: Windows' Western, Central European
and Cyrillic "ANSI" pages, the usual encodings of legacy European text files."""

_COMPARED_CODECS: Final = (*LEGACY_CODECS, "cp1253", "cp1255", "cp1256", "koi8_r")
"""What the detector compares: the decoded pages, and pages of other scripts (Greek, Hebrew,
Arabic, KOI8 Cyrillic) so that text in those is recognised and refused, not read as one of
ours. Latin-script pages such as Turkish cp1254 or Baltic cp1257 are left out: read against
Windows-1252 they differ in a few letters only, which a detector cannot tell apart reliably."""

CLEAN_MARGIN: Final = 0.05
"""Decodings whose mess ratio is within this of the cleanest one count as equally clean."""

# UTF-32 before UTF-16: the UTF-32 LE mark FF FE 00 00 starts with the UTF-16 LE mark FF FE.
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)

_LABELS: Final = {
    "cp1252": "Windows-1252",
    "cp1250": "Windows-1250",
    "cp1251": "Windows-1251",
    "cp1253": "Windows-1253 (Greek)",
    "cp1255": "Windows-1255 (Hebrew)",
    "cp1256": "Windows-1256 (Arabic)",
    "koi8_r": "KOI8-R",
}

_META_CHARSET: Final = re.compile(
    rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_C1_CONTROLS: Final = re.compile("[\x80-\x9f]")


def _symbol_class() -> str:
    """A regex class of the non-letters the legacy code pages put in their upper half (0x80-0xFF).

    These are what a wrong code page turns letters into: Polish ``ł`` and ``ą`` read as
    Windows-1252 become ``³`` and ``¹``, Russian ``ч`` becomes ``÷``.
    """
    symbols: set[str] = set()
    for codec in LEGACY_CODECS:
        for byte in range(0x80, 0x100):
            try:
                char = bytes([byte]).decode(codec)
            except UnicodeDecodeError:  # a byte the code page leaves undefined
                continue
            if not unicodedata.category(char).startswith(("L", "M")):
                symbols.add(char)
    return "[" + "".join(re.escape(char) for char in sorted(symbols)) + "]"


_SYMBOL: Final = re.compile(_symbol_class())

SYMBOL_SAMPLE_CHARS: Final = 1_000_000
"""How much of each reading the symbol count looks at: mojibake shows in the first paragraphs
already, and a whole 20 MB file would take seconds per code page."""


def _symbols_at_letters(text: str) -> int:
    """How many upper-half symbols touch a letter (the ``³`` of ``wzros³y``) in the text's start."""
    sample = text[:SYMBOL_SAMPLE_CHARS]
    count = 0
    for match in _SYMBOL.finditer(sample):
        at = match.start()
        before = sample[at - 1] if at else " "
        after = sample[at + 1] if at + 1 < len(sample) else " "
        count += before.isalpha() or after.isalpha()
    return count


def decode_bytes(data: bytes, *, name: str = "input", html: bool = False) -> tuple[str, str]:
    """Decode a file's bytes; return ``(text, codec name)``.

    In order, stopping at the first that applies:

    1. A byte-order mark decides: UTF-32 LE/BE, UTF-8 (``utf-8-sig``), UTF-16 LE/BE. Bytes
       invalid for the marked encoding are an error, not a reason to guess further.
    2. A NUL byte in the first 8 KiB means binary (no text encoding other than UTF-16/32, which
       need a BOM here, puts NULs in text): error.
    3. Strict UTF-8. Non-UTF-8 bytes almost never form valid UTF-8 by chance, so this is safe.
    4. HTML only: a ``<meta charset=...>`` or ``http-equiv`` ``content="...; charset=..."``
       declaration in the first 8 KiB, if Python knows that codec and it decodes the bytes.
       As browsers do (WHATWG), ``iso-8859-1`` and ``us-ascii`` are read as Windows-1252 first;
       UTF-16/32 declarations are ignored, since the bytes were not valid UTF-16/32 with a BOM.
    5. A legacy code page (:data:`LEGACY_CODECS`) chosen by :func:`_detect_legacy`:
       Windows-1252 for Western text, as before; Windows-1250 (Polish, Czech, ...) or
       Windows-1251 (Russian, Ukrainian, ...) when the text is recognisably in a language of
       that code page and its Windows-1252 reading is not plausible.

    Otherwise a ValueError whose message names the file and tells the user to convert it to
    UTF-8: a wrong guess would produce a confident summary of mojibake, which is worse.
    """
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{name} starts with a {label} byte-order mark but is not valid {label} "
                    f"({error.reason} at byte offset {error.start}); re-save it as UTF-8"
                ) from None
    if b"\x00" in data[:SNIFF_BYTES]:
        raise ValueError(
            f"{name} looks binary (NUL bytes in its first 8 KiB), not text; if it is UTF-16 or "
            "UTF-32 text without a byte-order mark, convert it to UTF-8, otherwise leave it out"
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        utf8_error = error
    declared = _declared_charset(data) if html else None
    if declared is not None:
        for codec in _declared_codecs(declared):
            try:
                return data.decode(codec), codec
            except (LookupError, ValueError):  # not a text codec, or the bytes do not fit it
                continue
    detected = _detect_legacy(data)
    if detected.codec is not None:
        return data.decode(detected.codec), detected.codec
    bad = data[utf8_error.start]
    meta = f"; its declared charset {declared!r} does not decode it" if declared else ""
    hint = (
        f"; it looks like {_LABELS[detected.hint]}, which is not decoded automatically"
        if detected.hint is not None
        else ""
    )
    raise ValueError(
        f"cannot detect the text encoding of {name} (not UTF-8: byte 0x{bad:02x} at offset "
        f"{utf8_error.start}; no byte-order mark{meta}; not recognisably Windows-1252, "
        f"Windows-1250 or Windows-1251{hint}); convert it to UTF-8, e.g. with "
        "`iconv -f ENCODING -t UTF-8`"
    )


@dataclass(frozen=True)
class _Detection:
    """The legacy code page to decode with; or none, and perhaps what the text is in instead."""

    codec: str | None
    hint: str | None = None
    """A code page not decoded here whose language the detector recognised (Greek, ...)."""


@dataclass(frozen=True)
class _Candidate:
    """One code page's reading of the bytes, as the detector and the symbol count judge it."""

    codec: str
    reads_as_cp1252: bool
    """Whether this reading is the same text as Windows-1252's (kept as a flag, not the text:
    several copies of a 20 MB file's text would be a lot of memory)."""
    chaos: float
    """charset-normalizer's mess ratio: 0 is clean; above its threshold (0.2) it is dropped."""
    coherence: float
    """How well the letter frequencies fit ``language``; 0 when no language was recognised."""
    language: str
    symbols: int
    """Non-letters from a code page's upper half touching a letter: mojibake's signature."""

    @property
    def recognised(self) -> bool:
        """The detector recognised a language, and it is one the code page is made for.

        A code page's name alone does not count: charset-normalizer calls any Windows-1251
        reading "Russian" even when no word of it is, so coherence must be above zero too.
        """
        if self.coherence <= 0 or self.language == "Unknown":
            return False
        from charset_normalizer.cd import encoding_languages

        languages = encoding_languages(self.codec)
        return languages == ["Latin Based"] or self.language in languages


def _detect_legacy(data: bytes) -> _Detection:
    """Choose a legacy code page for bytes that are not UTF-8, or explain why not.

    charset-normalizer reads the bytes in each code page of :data:`_COMPARED_CODECS` and keeps
    the readings it finds clean enough. Among those about as clean as the cleanest
    (:data:`CLEAN_MARGIN`), fewer letter-touching symbols win, then a better language fit,
    then Windows-1252. Symbols come first because the detector rates Polish read as
    Windows-1252 (``wzros³y``) as clean, and even as more Polish, than the real thing.

    Windows-1252, what routeq used before, stays the reading whenever it decodes the bytes
    and is among the clean readings, unless the best reading is of a recognised language and
    has fewer symbols: Polish wins so, Czech (whose letters Windows-1252 turns into other
    letters, ``è`` for ``č``) only when the detector finds the Windows-1252 reading messy.
    The best reading is then used if it is in :data:`LEGACY_CODECS`; a recognised Greek, Hebrew,
    Arabic or KOI8-R text is refused instead of being decoded as Windows-1252 mojibake.

    With no recognised language (a line or two of text), a plausible Windows-1252 reading is
    used as before; an implausible one (``Ïðèâåò`` for ``Привет``) is refused rather than
    summarised. When the detector finds no reading clean at all, it has no opinion, and
    Windows-1252 is used if it decodes the bytes, as before.
    """
    legacy = data.decode("cp1252", errors="replace")
    legacy_ok = "\ufffd" not in legacy and not _C1_CONTROLS.search(legacy)
    candidates = _candidates(data, legacy if legacy_ok else None)
    del legacy
    if not candidates:
        return _Detection("cp1252" if legacy_ok else None)
    cleanest = min(candidate.chaos for candidate in candidates)
    clean = [c for c in candidates if c.chaos <= cleanest + CLEAN_MARGIN]
    best = min(clean, key=lambda c: (c.symbols, -c.coherence, c.codec != "cp1252"))
    if best.reads_as_cp1252:
        return _Detection("cp1252")
    plausible = [c for c in clean if c.reads_as_cp1252]
    if best.recognised and (not plausible or best.symbols < plausible[0].symbols):
        if best.codec in LEGACY_CODECS:
            return _Detection(best.codec)
        return _Detection(None, hint=best.codec)
    return _Detection("cp1252" if plausible else None)


def _candidates(data: bytes, cp1252_text: str | None) -> list[_Candidate]:
    """The detector's clean-enough readings, one per code page (alike readings share a match).

    ``cp1252_text`` is the Windows-1252 reading when it is usable, to mark the readings equal
    to it.
    """
    from charset_normalizer import from_bytes  # imported on first use: most files are UTF-8

    matches = from_bytes(data, cp_isolation=list(_COMPARED_CODECS), preemptive_behaviour=False)
    candidates: list[_Candidate] = []
    for match in matches:
        for codec in (match.encoding, *match.could_be_from_charset):
            if codec not in _COMPARED_CODECS or any(c.codec == codec for c in candidates):
                continue
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                continue
            candidates.append(
                _Candidate(
                    codec,
                    reads_as_cp1252=text == cp1252_text,
                    chaos=match.chaos,
                    coherence=match.coherence,
                    language=match.language,
                    symbols=_symbols_at_letters(text),
                )
            )
    return candidates


def _declared_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in a ``<meta>`` tag near its start, if any."""
    match = _META_CHARSET.search(data[:SNIFF_BYTES])
    return match.group(1).decode("ascii") if match else None


def _declared_codecs(label: str) -> list[str]:
    """Python codecs to try, in order, for a declared HTML charset label (WHATWG-style)."""
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return []
    if name.startswith(("utf-16", "utf-32")):
        return []
    if name in ("iso8859-1", "ascii"):
        return ["cp1252", name]
    return [name]
