"""Legacy code pages: Russian and Polish files are decoded right, not summarised as mojibake.

Before the detector, any text that was not UTF-8 and avoided five bytes was read as
Windows-1252, so a Windows-1251 report became ``Îò÷¸ò î ðàáîòå`` and was still summarised and
billed. Western Windows-1252 files must keep working exactly as before.
"""

# Cyrillic, Greek and typographic characters are this file's subject, not look-alike typos.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import re
from pathlib import Path

import pytest

from routeq.batch.ingest import Document, collect, decode_bytes

RUSSIAN = (
    "Компания сообщила, что выручка за третий квартал выросла на 12 процентов по сравнению с "
    "прошлым годом. Основной рост обеспечили продажи в Москве и Санкт-Петербурге, а также "
    "запуск нового интернет-магазина. В следующем году руководство планирует открыть склад в "
    "Новосибирске и нанять ещё двести сотрудников.\r\n"
)
UKRAINIAN = (
    "Звіт про роботу відділу продажів за третій квартал. Виручка зросла на 12 відсотків, а "
    "кількість нових клієнтів подвоїлася. Наступного року керівництво планує відкрити склад у "
    "Львові та найняти ще двісті працівників.\n"
)
POLISH = (
    "Spółka poinformowała, że przychody w trzecim kwartale wzrosły o 12 procent w porównaniu z "
    "ubiegłym rokiem. Główny wzrost zapewniła sprzedaż w Warszawie i Krakowie oraz uruchomienie "
    "nowego sklepu internetowego. W przyszłym roku zarząd planuje otworzyć magazyn w Łodzi i "
    "zatrudnić dwustu pracowników.\n"
)
POLISH_NOTE = (
    "# Instrukcja obsługi\n\n"
    "Ten dokument opisuje, jak skonfigurować usługę na serwerze produkcyjnym.\n\n"
    "- Python 3.11 lub nowszy,\n"
    "- dostęp do bazy danych PostgreSQL,\n"
    "- co najmniej 2 GB pamięci RAM.\n\n"
    "Żeby uruchomić usługę, należy wykonać polecenie `make install`, a następnie sprawdzić "
    "dziennik zdarzeń. W razie błędów prosimy o kontakt z działem wsparcia.\n"
)
CZECH = (
    "Návod k obsluze: služba se spouští příkazem make install. Před spuštěním je třeba nastavit "
    "připojení k databázi a zkontrolovat, že je k dispozici alespoň 2 GB paměti. Pokud se "
    "objeví chyba, obraťte se na oddělení podpory; odpovíme do čtyř pracovních dnů.\n"
)
WESTERN = {
    "french": (
        "Le rapport trimestriel montre que le chiffre d’affaires a progressé de 12 % ; l’équipe "
        "prévoit d’ouvrir un bureau à Genève en été. Tarif : 19,90 € par mois, à régler "
        "d’avance.\n"
    ),
    "german": (
        "Die Bäckerei Müller in der Brückenstraße liefert täglich frische Brötchen – für nur "
        "0,45 €. Benötigt werden außerdem 2 Öfen.\n"
    ),
    "spanish": (
        "El informe trimestral muestra que la facturación creció un 12 %; el equipo planea abrir "
        "una oficina en Málaga el próximo año. Año de lanzamiento: 2024, señal de éxito.\n"
    ),
    "symbols": (
        "Temp: 25°C ±0,5 °C; Preis: 12,50 € (inkl. 19 % MwSt.) — © Müller & Söhne® ½ kg, "
        "¼ l, 3×4 m², µg, §12 Abs. 3\n"
    ),
    "english": (
        "The flat has 54 m² of floor space and a balcony of 6 m²; rent is £950 a month, bills "
        "included, deposit £1,100.\n"
    ),
    "short": "caf\u00e9 \u201cquoted\u201d \u20ac5",
}


def collect_one(path: Path) -> Document:
    documents = collect([path])
    assert len(documents) == 1, documents
    return documents[0]


def expected_text(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


@pytest.mark.parametrize(("name", "text"), [("russian", RUSSIAN), ("ukrainian", UKRAINIAN)])
def test_windows_1251_cyrillic_is_decoded(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_bytes(text.encode("cp1251"))
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.text == expected_text(text)
    assert document.metadata["encoding"] == "cp1251"


@pytest.mark.parametrize(
    ("name", "text"), [("polish.txt", POLISH), ("notes.md", POLISH_NOTE), ("czech.txt", CZECH)]
)
def test_windows_1250_central_european_is_decoded(tmp_path: Path, name: str, text: str) -> None:
    # Polish read as Windows-1252 decodes without an error ("wzros³y", "Łodzi" as "£odzi"),
    # which is what used to be summarised.
    path = tmp_path / name
    path.write_bytes(text.encode("cp1250"))
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.text == expected_text(text)
    assert document.metadata["encoding"] == "cp1250"


@pytest.mark.parametrize(("name", "text"), WESTERN.items())
def test_windows_1252_western_text_still_decodes_as_before(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_bytes(text.encode("cp1252"))
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.text == expected_text(text)
    assert document.metadata["encoding"] == "cp1252"


def test_html_without_a_charset_declaration_is_detected_too(tmp_path: Path) -> None:
    markup = f"<html><head><title>Отчёт</title></head><body><p>{RUSSIAN}</p></body></html>"
    path = tmp_path / "report.html"
    path.write_bytes(markup.encode("cp1251"))
    document = collect_one(path)
    assert document.ok, document.rejected
    assert document.text == expected_text(RUSSIAN)
    assert document.metadata == {
        "encoding": "cp1251",
        "bytes": len(markup.encode("cp1251")),
        "title": "Отчёт",
    }


def test_greek_is_refused_rather_than_read_as_another_code_page(tmp_path: Path) -> None:
    greek = (
        "Η εταιρεία ανακοίνωσε ότι τα έσοδα του τρίτου τριμήνου αυξήθηκαν κατά 12 τοις εκατό "
        "σε σύγκριση με πέρυσι, χάρη στις πωλήσεις στην Αθήνα και στη Θεσσαλονίκη."
    )
    path = tmp_path / "greek.txt"
    path.write_bytes(greek.encode("cp1253"))
    reason = collect_one(path).rejected
    assert reason is not None
    assert reason.startswith(f"cannot detect the text encoding of {path} (not UTF-8")
    assert "it looks like Windows-1253 (Greek)" in reason
    assert "convert it to UTF-8" in reason


def test_a_short_cyrillic_line_is_refused_not_read_as_windows_1252() -> None:
    # Too short for the detector to recognise the language; its Windows-1252 reading
    # ("Ïðèâåò, ìèð!") is mojibake, so neither is guessed.
    with pytest.raises(
        ValueError, match=f"^{re.escape('cannot detect the text encoding of note.txt')}"
    ):
        decode_bytes("Привет, мир! Как дела?".encode("cp1251"), name="note.txt")


def test_stray_bytes_in_english_are_still_rejected() -> None:
    data = (
        b"English text with a stray byte here \x81 and more English words to make it long "
        b"enough for a language check."
    )
    with pytest.raises(ValueError, match="convert it to UTF-8"):
        decode_bytes(data, name="stray.txt")
