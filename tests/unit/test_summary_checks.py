"""Unit tests for routeq.judges.summary: the cheap checks a document summary must pass."""

from __future__ import annotations

import random

import pytest

from routeq.judges.summary import (
    detect_language,
    longest_shared_run,
    strip_sim_label,
    summary_failure,
    unsupported_entities,
    unsupported_numbers,
    words,
)
from routeq.summary_spec import LANGUAGES, SummarySpec

SOURCE = """\
Northwind Traders, a logistics company based in Rotterdam, published its annual report on \
Tuesday. Revenue rose to 1,204 million euros in 2024, up 12% from the previous year, while \
operating costs grew more slowly. The company credits most of the growth to its new warehouse \
network in Poland and to a partnership with the shipping line Maersk, which started in March.

Chief executive Anna de Vries said the firm would keep investing in automation. About 3.5 \
percent of revenue went to research and development, and the company plans to open two more \
warehouses next year. It also hired 450 new employees, most of them in its Polish sites.

Not everything went well. A strike at the port of Antwerp delayed deliveries for nine days in \
the autumn, and fuel prices remained high throughout the year. The board proposed a dividend \
of 0.80 euros per share, which shareholders will vote on at the meeting in May.
"""

GOOD_PARAGRAPH = (
    "Northwind Traders, a Rotterdam logistics firm, grew revenue by 12% to 1,204 million euros "
    "in 2024, helped by new warehouses in Poland and a partnership with Maersk. It spent 3.5 "
    "percent of revenue on research, hired 450 people and plans two more warehouses. A strike "
    "in Antwerp and high fuel prices hurt, and the board proposed a dividend of 0.80 euros per "
    "share."
)

GOOD_BULLETS = (
    "- Overall, Northwind Traders grew revenue 12% to 1,204 million euros in 2024.\n"
    "- Growth came from warehouses in Poland and a partnership with Maersk.\n"
    "- A strike in Antwerp and high fuel prices hurt the year.\n"
    "- The board proposed a dividend of 0.80 euros per share."
)

GERMAN_SUMMARY = (
    "Northwind Traders aus Rotterdam hat den Umsatz im Jahr 2024 um 12% auf 1,204 Millionen "
    "Euro gesteigert. Das Wachstum kam von neuen Lagern in Polen und einer Partnerschaft mit "
    "Maersk. Ein Streik in Antwerpen und hohe Treibstoffpreise haben das Jahr belastet."
)

FRENCH_SUMMARY = (
    "Northwind Traders, une entreprise de logistique de Rotterdam, a augmenté son chiffre "
    "d'affaires de 12% pour atteindre 1,204 millions d'euros en 2024, grâce à de nouveaux "
    "entrepôts en Pologne et à un partenariat avec Maersk. Une grève et le prix du carburant "
    "ont pesé sur les résultats."
)

PARAGRAPH = SummarySpec()
BULLETS = SummarySpec(format="bullets")
SIM_LABEL = "[sim:sim-small q=0.83] "


def failure(summary: str, spec: SummarySpec = PARAGRAPH, source: str = SOURCE) -> str:
    """The failure reason, asserting there is one."""
    reason = summary_failure(spec, source, summary)
    assert reason is not None, "expected the summary to fail"
    return reason


# -- good summaries pass ---------------------------------------------------------------------------


class TestGoodSummaries:
    def test_rephrased_paragraph_passes(self) -> None:
        assert summary_failure(PARAGRAPH, SOURCE, GOOD_PARAGRAPH) is None

    def test_bulleted_list_passes(self) -> None:
        assert summary_failure(BULLETS, SOURCE, GOOD_BULLETS) is None

    def test_numbered_list_markers_are_neither_words_nor_numbers(self) -> None:
        numbered = "\n".join(
            f"{index}. {line[2:]}" for index, line in enumerate(GOOD_BULLETS.splitlines(), 1)
        )
        assert summary_failure(BULLETS, SOURCE, numbered) is None

    def test_sim_label_is_stripped_so_its_quality_is_not_a_number(self) -> None:
        assert summary_failure(PARAGRAPH, SOURCE, SIM_LABEL + GOOD_PARAGRAPH) is None

    def test_german_summary_passes_when_german_requested(self) -> None:
        # German capitalises every noun: only acronyms may count as names there.
        spec = SummarySpec(language="de", min_words=20)
        assert summary_failure(spec, SOURCE, GERMAN_SUMMARY) is None


@pytest.mark.parametrize("summary", ["", "   \n ", SIM_LABEL, SIM_LABEL + "  \n"])
def test_empty_summary(summary: str) -> None:
    assert summary_failure(PARAGRAPH, SOURCE, summary) == "empty summary"


# -- sim label and words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[sim:sim-small q=0.83] Revenue rose.", "Revenue rose."),
        ("  [sim:frontier-x q=1]Revenue rose.", "Revenue rose."),
        ("Revenue rose.", "Revenue rose."),
        ("Revenue [sim:sim-small q=0.83] rose.", "Revenue [sim:sim-small q=0.83] rose."),
        ("[sim:sim small q=0.83] Revenue rose.", "[sim:sim small q=0.83] Revenue rose."),
    ],
)
def test_strip_sim_label(text: str, expected: str) -> None:
    assert strip_sim_label(text) == expected


def test_words_skip_markers_and_punctuation() -> None:
    assert words("- Revenue rose 12% in Q3; it's well-known — don\u2019t_panic") == [
        "Revenue",
        "rose",
        "12",
        "in",
        "Q3",
        "it's",
        "well-known",
        "don\u2019t",
        "panic",
    ]


# -- format ----------------------------------------------------------------------------------------


class TestFormat:
    def test_bullets_in_a_paragraph_summary(self) -> None:
        assert failure(GOOD_BULLETS) == "format: expected one paragraph, found 4 bullet lines"

    def test_heading_in_a_paragraph_summary(self) -> None:
        reason = failure("# Summary\n" + GOOD_PARAGRAPH)
        assert reason == "format: expected one paragraph, found 1 heading line"

    def test_paragraph_in_a_bulleted_summary(self) -> None:
        reason = failure(GOOD_PARAGRAPH, BULLETS)
        assert reason == "format: expected a bulleted list, 1 of 1 lines are not bullets"

    def test_some_lines_not_bullets(self) -> None:
        mixed = "Key points:\n" + GOOD_BULLETS + "\nThat is all."
        reason = failure(mixed, BULLETS)
        assert reason == "format: expected a bulleted list, 2 of 6 lines are not bullets"

    @pytest.mark.parametrize("marker", ["- ", "* ", "• ", "1. ", "2) ", "  - "])
    def test_bullet_markers_recognised(self, marker: str) -> None:
        summary = "\n".join(marker + line[2:] for line in GOOD_BULLETS.splitlines())
        assert summary_failure(BULLETS, SOURCE, summary) is None


# -- length ----------------------------------------------------------------------------------------


class TestLength:
    def test_too_short(self) -> None:
        assert failure("Northwind grew revenue.") == (
            "length: 3 words, outside the requested 25-120"
        )

    def test_too_long(self) -> None:
        spec = SummarySpec(min_words=10, max_words=30)
        count = len(words(GOOD_PARAGRAPH))
        assert count > 30
        assert failure(GOOD_PARAGRAPH, spec) == (
            f"length: {count} words, outside the requested 10-30"
        )

    def test_short_source_relaxes_the_minimum(self) -> None:
        source = (
            "Northwind Traders opened a new warehouse in Poland this spring, and the company "
            "expects it to cut delivery times for customers."
        )
        assert len(words(source)) == 21  # so the minimum drops from 25 to 10
        summary = "Northwind Traders opened a warehouse in Poland to deliver faster to customers."
        assert summary_failure(PARAGRAPH, source, summary) is None
        assert summary_failure(PARAGRAPH, source, "Northwind opened a warehouse.") == (
            "length: 4 words, outside the allowed 10-120 (the input has only 21 words)"
        )


# -- copying ---------------------------------------------------------------------------------------


class TestCopy:
    def test_verbatim_passage(self) -> None:
        passage = SOURCE.split("\n\n")[2].strip()
        assert len(words(passage)) == 48
        reason = failure(f"In short, Northwind grew. {passage}")
        assert reason == "copy: repeats a 48-word passage of the input verbatim"

    def test_shorter_shared_passage_is_allowed(self) -> None:
        passage = " ".join(words(SOURCE)[:29])
        reason = summary_failure(PARAGRAPH, SOURCE, f"In short, {passage}. Costs grew slowly.")
        assert "copy" not in (reason or "")

    def test_not_condensed(self) -> None:
        source_words = words(SOURCE)
        # Shuffled, so no long verbatim run: only the length betrays it.
        summary_words = source_words[: len(source_words) * 9 // 10]
        random.Random(7).shuffle(summary_words)
        share = round(100 * len(summary_words) / len(source_words))
        reason = failure(" ".join(word.lower() for word in summary_words))
        assert f"copy: the summary is {share}% of the input's length (not condensed)" in (
            reason.split("; ")
        )
        assert "verbatim" not in reason

    def test_short_source_may_be_as_long_as_its_summary(self) -> None:
        source = "Northwind Traders opened a new warehouse in Poland this spring."
        reason = summary_failure(
            PARAGRAPH, source, "Northwind Traders opened a warehouse in Poland."
        )
        assert reason is None


class TestLongestSharedRun:
    @pytest.mark.parametrize(
        ("source", "summary", "expected"),
        [
            ("The quick brown fox jumps over the lazy dog", "a QUICK brown fox leaps", 3),
            ("The quick brown fox jumps over the lazy dog", "it jumps over the lazy cat", 4),
            ("one two three", "one, two. three!", 3),
            ("a b a b a b c", "a b a b c", 5),
            ("alpha beta", "gamma delta", 0),
            ("", "anything", 0),
            ("anything", "", 0),
        ],
    )
    def test_known_cases(self, source: str, summary: str, expected: int) -> None:
        assert longest_shared_run(source, summary) == expected

    def test_large_source(self) -> None:
        rng = random.Random(42)
        vocabulary = [f"w{index}" for index in range(2000)] + ["the", "of", "and", "a", "to"] * 200
        source_words = [rng.choice(vocabulary) for _ in range(20_000)]
        passage = source_words[12_000:12_040]
        summary_words = [rng.choice(vocabulary) for _ in range(460)]
        summary_words[200:200] = passage
        source, summary = " ".join(source_words), " ".join(summary_words)

        assert longest_shared_run(source, summary) >= 40
        reason = summary_failure(SummarySpec(max_words=600), source, summary)
        assert reason is not None
        assert "copy: repeats a" in reason


# -- numbers ---------------------------------------------------------------------------------------


class TestNumbers:
    def test_hallucinated_number_and_percent(self) -> None:
        summary = GOOD_PARAGRAPH.replace("12%", "37%") + " Growth should continue until 2031."
        assert failure(summary) == "numbers not in the source: 37%, 2031"

    @pytest.mark.parametrize(
        "summary",
        [
            "Revenue was 1204 million euros.",  # thousands separator in the source only
            "Revenue was 1,204.",  # trailing period
            "It grew 12 percent.",  # percent sign in the source only
            "It grew 12%.",
            "A dividend of 0.8 euros.",  # trailing fractional zero
            "About 3,5 percent went to research.",  # decimal comma
            "In 2024, revenue rose.",
        ],
    )
    def test_normalised_numbers_are_supported(self, summary: str) -> None:
        assert unsupported_numbers(SOURCE, summary) == []

    def test_thousands_separator_in_the_summary_only(self) -> None:
        assert unsupported_numbers("Sales reached 15000 units.", "Sales hit 15,000.") == []

    def test_in_order_and_deduplicated(self) -> None:
        summary = "Sales were 99, then 7,000, then 99 again and 7000 units, and 5% more."
        assert unsupported_numbers("No figures here.", summary) == ["99", "7,000", "5%"]

    def test_list_is_capped(self) -> None:
        summary = "Figures: 11, 22, 33, 44, 55, 66 and 77 appear in the summary only."
        reason = failure(summary, SummarySpec(min_words=5))
        assert "numbers not in the source: 11, 22, 33, 44, 55 (+2 more)" in reason


# -- names -----------------------------------------------------------------------------------------


class TestEntities:
    def test_invented_names_mid_sentence(self) -> None:
        summary = GOOD_PARAGRAPH.replace(
            "the board", "analysts at Gartner in Zurich said the board"
        )
        assert failure(summary) == "names not in the source: Gartner, Zurich"

    def test_sentence_and_bullet_initial_capitals_are_not_names(self) -> None:
        summary = (
            "Overall the firm grew. Still: costs rose! However, Maersk helped? Yes.\n"
            "- Meanwhile Poland mattered\n"
            "* Finally the year ended\n"
            "2. Notably the board met"
        )
        assert unsupported_entities(SOURCE, summary) == []

    @pytest.mark.parametrize("summary", ["The EBITDA margin improved.", "EBITDA improved."])
    def test_acronym_is_a_name_anywhere(self, summary: str) -> None:
        assert unsupported_entities(SOURCE, summary) == ["EBITDA"]

    def test_pronoun_i_is_not_a_name(self) -> None:
        assert unsupported_entities(SOURCE, "Here I think and I'm sure the firm grew.") == []

    @pytest.mark.parametrize(
        "summary",
        [
            "The deal with Maersk's fleet helped.",  # possessive
            "A Rotterdam-based firm grew.",  # hyphenated compound
            "The chief executive, Anna De Vries, spoke.",  # case differs from the source
            "Shareholders vote in May.",  # months are names the source does contain
        ],
    )
    def test_names_from_the_source_are_supported(self, summary: str) -> None:
        assert unsupported_entities(SOURCE, summary) == []

    def test_deduplicated_in_order(self) -> None:
        summary = "Sales to Zurich and Geneva rose, and Zurich led, then ZURICH again."
        assert unsupported_entities(SOURCE, summary) == ["Zurich", "Geneva"]

    def test_acronyms_only_ignores_capitalised_nouns(self) -> None:
        summary = "Der Umsatz von Northwind stieg, sagte die EZB."
        assert unsupported_entities(SOURCE, summary, acronyms_only=True) == ["EZB"]


# -- language --------------------------------------------------------------------------------------

LANGUAGE_SAMPLES: dict[str, str] = {
    "en": (
        "The company reported that revenue grew in the third quarter, driven by strong demand "
        "for its cloud services and a recovery in hardware sales across Europe."
    ),
    "de": GERMAN_SUMMARY,
    "fr": FRENCH_SUMMARY,
    "es": (
        "La empresa informó que los ingresos crecieron en el tercer trimestre, impulsados por "
        "una fuerte demanda de sus servicios en la nube y una recuperación de las ventas."
    ),
    "it": (
        "L'azienda ha comunicato che i ricavi sono cresciuti nel terzo trimestre, grazie a una "
        "forte domanda per i suoi servizi cloud e a una ripresa delle vendite di hardware."
    ),
    "pt": (
        "A empresa informou que a receita cresceu no terceiro trimestre, impulsionada por uma "
        "forte procura pelos seus serviços de nuvem e por uma recuperação das vendas."
    ),
    "nl": (
        "Het bedrijf meldde dat de omzet in het derde kwartaal is gestegen, gedreven door een "
        "sterke vraag naar zijn clouddiensten en een herstel van de hardwareverkoop."
    ),
}


class TestLanguage:
    def test_every_requestable_language_has_a_sample(self) -> None:
        assert set(LANGUAGE_SAMPLES) == set(LANGUAGES)

    @pytest.mark.parametrize(("code", "text"), LANGUAGE_SAMPLES.items())
    def test_detects(self, code: str, text: str) -> None:
        assert detect_language(text) == code

    def test_too_short_text_is_undecided(self) -> None:
        assert detect_language("Der Umsatz ist gestiegen und das ist gut.") is None

    def test_mixed_text_is_undecided(self) -> None:
        mixed = (
            "The company grew and the costs fell. Das Unternehmen ist gewachsen und die Kosten "
            "sanken."
        )
        assert detect_language(mixed) is None

    def test_no_function_words_is_undecided(self) -> None:
        assert detect_language("Revenue growth margins shareholders dividend " * 3) is None

    @pytest.mark.parametrize(
        ("summary", "expected"),
        [
            (GERMAN_SUMMARY, "language: written in German (de), requested English (en)"),
            (FRENCH_SUMMARY, "language: written in French (fr), requested English (en)"),
        ],
    )
    def test_wrong_language(self, summary: str, expected: str) -> None:
        assert expected in failure(summary).split("; ")

    def test_short_summary_in_another_language_passes_the_language_check(self) -> None:
        reason = failure("Der Umsatz von Northwind ist gestiegen.")
        assert "language" not in reason


# -- several failures ------------------------------------------------------------------------------


def test_all_reasons_reported_in_order() -> None:
    summary = "- Analysts at Gartner expect 37% growth.\n- " + " ".join(words(SOURCE)[:40])
    reason = failure(summary)
    prefixes = [part.split(":")[0] for part in reason.split("; ")]
    assert prefixes == ["format", "copy", "numbers not in the source", "names not in the source"]
    assert "37%" in reason
    assert "Gartner" in reason


def test_a_combine_may_keep_most_of_its_partial_summaries() -> None:
    partials = (
        "Part 1 summary:\nAldera Systems hired engineers in Lisbon and opened a second office "
        "there in the spring, with the team growing steadily through the summer months.\n\n"
        "Part 2 summary:\nThe board chaired by Marta Kovacs approved the budget and asked the "
        "team to report on hiring progress every quarter from now on."
    )
    combined = (
        "Aldera Systems hired engineers in Lisbon and opened a second office there in the "
        "spring, with the team growing steadily through the summer months. The board chaired by "
        "Marta Kovacs approved the budget and asked the team to report on hiring progress every "
        "quarter."
    )
    spec = SummarySpec(min_words=10, max_words=50)  # 45 of the input's 53 words: not condensed
    assert "copy" in (summary_failure(spec, partials, combined) or "")
    assert summary_failure(spec, partials, combined, condensing=False) is None
