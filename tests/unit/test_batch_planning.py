"""Pure batch logic: summary specs and prompts, map-reduce planning, names, preparation, totals."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from tierspec import tier_dict

from routeq.batch.ingest import Document
from routeq.batch.report import batch_totals, markdown_digest, result_record, totals_record
from routeq.batch.submit import default_batch_name, documents_from_records, prepare
from routeq.config import SummarizeConfig, TierConfig
from routeq.errors import InvalidQueryError
from routeq.ledger.batches import DocumentResult
from routeq.summarize.mapreduce import part_budget, plan_combines, split_document
from routeq.summary_spec import (
    SummarySpec,
    SummaryTask,
    cache_key,
    combine_text,
    instructions,
    summary_messages,
)
from routeq.tokens import count_tokens

SPEC = SummarySpec()


def tier(window: int = 16_000, max_output: int = 1024) -> TierConfig:
    return TierConfig(**{**tier_dict("cheap", window), "max_output_tokens": max_output})


def report(paragraphs: int) -> str:
    return "\n\n".join(
        f"Section {i}. Aldera Systems processed {1000 + i} orders in week {i} and cut latency "
        f"by {i % 30}% while the team in Lisbon reviewed {i % 7} incidents."
        for i in range(paragraphs)
    )


# -- spec and prompts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"min_words": 200, "max_words": 100}, "must not exceed"),
        ({"language": "xx"}, "unsupported language"),
        ({"format": "table"}, "paragraph"),
        ({"max_words": 0}, "greater than or equal"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SummarySpec(**fields)  # type: ignore[arg-type]


def test_the_cache_key_changes_with_the_text_and_with_the_spec() -> None:
    assert cache_key("abc", SPEC) == cache_key("abc", SummarySpec())
    assert cache_key("abc", SPEC) != cache_key("abd", SPEC)
    assert cache_key("abc", SPEC) != cache_key("abc", SummarySpec(max_words=121))


def test_prompts_say_the_bounds_language_format_and_role() -> None:
    bullets = SummarySpec(min_words=10, max_words=50, language="fr", format="bullets")
    part = instructions(SummaryTask(role="part", part=2, parts=5, spec=bullets))
    assert "part 2 of 5" in part and "10-50 words" in part and "French (fr)" in part
    assert "bulleted list" in part
    combine = instructions(SummaryTask(role="combine", part=1, parts=1, stage=1, spec=SPEC))
    assert "Combine them into one summary" in combine and "one paragraph" in combine
    messages = summary_messages(SummaryTask(spec=SPEC), "the text", "Tier prompt.")
    assert messages[0]["content"].startswith("Tier prompt.\n\nSummarize the document")
    assert messages[1] == {"role": "user", "content": "the text"}


# -- map-reduce planning ---------------------------------------------------------------------------


def test_a_document_within_the_budget_is_not_split() -> None:
    text = report(3)
    assert split_document(text, count_tokens(text), 3000, SPEC, overlap_sentences=1) is None


def test_a_long_document_is_split_into_ordered_parts_within_the_budget() -> None:
    text = report(300)
    tokens = count_tokens(text)
    parts = split_document(text, tokens, 1000, SPEC, overlap_sentences=0)
    assert parts is not None and len(parts) >= tokens // 1000
    assert all(piece.tokens <= 1000 for piece in parts)
    assert [piece.task.part for piece in parts] == list(range(1, len(parts) + 1))
    assert {(piece.task.role, piece.task.parts, piece.task.stage) for piece in parts} == {
        ("part", len(parts), 0)
    }
    assert parts[0].text.startswith("Section 0.") and parts[-1].text.endswith("incidents.")


def test_the_part_budget_is_the_smaller_of_the_cap_and_the_tiers_window() -> None:
    task = SummaryTask(spec=SPEC)
    assert part_budget(SummarizeConfig(max_chunk_tokens=3000), task, tier(16_000)) == 3000
    small = part_budget(SummarizeConfig(max_chunk_tokens=3000), task, tier(2000, 512))
    assert 1000 < small < 2000 - 512


def test_combines_group_partials_in_order_and_stage_up() -> None:
    partials = [f"Part {i}: Aldera Systems shipped {i} releases." for i in range(10)]
    [single] = plan_combines(partials, stage=0, budget=3000, spec=SPEC)
    assert (single.task.role, single.task.stage, single.task.parts) == ("combine", 1, 1)
    assert single.text == combine_text(partials)
    assert single.text.index("Part 0:") < single.text.index("Part 9:")
    several = plan_combines(partials, stage=1, budget=60, spec=SPEC)
    assert 1 < len(several) < len(partials)
    assert {piece.task.stage for piece in several} == {2}


def test_combining_that_cannot_make_progress_is_refused() -> None:
    partials = ["word " * 40] * 3
    with pytest.raises(ValueError, match="cannot be combined"):
        plan_combines(partials, stage=0, budget=50, spec=SPEC)


# -- naming and preparing --------------------------------------------------------------------------


def test_the_default_name_is_stable_for_the_same_inputs_and_spec(tmp_path: Path) -> None:
    first = default_batch_name([str(tmp_path / "a"), str(tmp_path / "b")], SPEC)
    assert first == default_batch_name([str(tmp_path / "b"), str(tmp_path / "a")], SPEC)
    assert first.startswith("summarize-a-")
    assert first != default_batch_name([str(tmp_path / "a")], SPEC)
    assert first != default_batch_name(
        [str(tmp_path / "a"), str(tmp_path / "b")], SummarySpec(max_words=99)
    )


def test_records_become_documents_and_bad_records_rejections() -> None:
    docs = documents_from_records(
        [
            {"id": 1, "text": "Hello  \r\nworld", "metadata": {"lang": "en"}},
            {"id": "b", "text": "   "},
            {"id": "c", "text": "x", "metadata": ["not", "a", "mapping"]},
        ]
    )
    assert [(d.doc_id, d.ok) for d in docs] == [("1", True), ("b", False), ("c", False)]
    assert docs[0].text == "Hello\nworld" and docs[0].metadata == {"lang": "en"}
    assert "non-empty string" in (docs[1].rejected or "")
    with pytest.raises(InvalidQueryError, match="'id'"):
        documents_from_records([{"text": "no id"}])


def test_prepare_counts_tokens_and_rejects_what_cannot_be_sent() -> None:
    ok = Document("a", "a.txt", "Aldera Systems shipped 3 releases.")
    huge = Document("b", "b.txt", "x" * 50)
    nul = Document("c", "c.txt", "a\x00b")
    gone = Document("d", "d.pdf", None, rejected="d.pdf: unsupported file type")
    prepared = prepare([ok, huge, nul, gone], max_chars=40)
    assert prepared[0].input_tokens == count_tokens(ok.text or "") and not prepared[0].rejected
    assert "max_query_chars" in (prepared[1].rejected or "")
    assert "NUL" in (prepared[2].rejected or "")
    assert prepared[3].rejected == "d.pdf: unsupported file type"


# -- totals and output -----------------------------------------------------------------------------


def result(doc_id: str, status: str, **fields: object) -> DocumentResult:
    values: dict[str, object] = {
        "doc_id": doc_id,
        "source": f"{doc_id}.txt",
        "format": "text",
        "status": status,
        "reason": None,
        "summary": "A summary." if status == "done" else None,
        "final_tier": "cheap" if status == "done" else None,
        "final_model": None,
        "input_tokens": 1000,
        "cost": Decimal("0.001") if status in ("done", "failed") else Decimal(0),
        "reused": False,
        "parts": 0,
        "tier_path": ["cheap"] if status == "done" else [],
        "verdicts": [],
        "escalated": False,
        "top_tier_input_tokens": 1000,  # its accepted calls' tokens (the view's)
        "top_tier_output_tokens": 100,
        "query_id": uuid.uuid4(),
    }
    values.update(fields)
    return DocumentResult(**values)  # type: ignore[arg-type]


def test_totals_count_states_shares_escalations_and_the_top_tier_estimate() -> None:
    prices = {"input_price_per_mtok": "5", "output_price_per_mtok": "15"}
    top = TierConfig(**tier_dict("frontier", 200_000, **prices))
    results = [
        result("a", "done"),
        result("b", "done", final_tier="frontier", escalated=True, tier_path=["cheap", "mid"]),
        result("c", "done", reused=True, cost=Decimal(0)),
        result("d", "failed", reason="every tier failed"),
        result("e", "rejected", reason="binary"),
        result("f", "queued"),
    ]
    totals = batch_totals(results, top, SPEC, cost=Decimal("0.003"))
    assert (totals.documents, totals.done, totals.failed, totals.rejected) == (6, 3, 1, 1)
    assert (totals.pending, totals.reused, totals.escalated) == (1, 1, 1)
    assert totals.tier_share == {"cheap": pytest.approx(2 / 3), "frontier": pytest.approx(1 / 3)}
    assert totals.escalation_rate == pytest.approx(1 / 3)
    # two documents this batch summarised itself: 1000 tokens in, 100 out each, at $5/$15
    assert totals.top_tier_estimate == Decimal("0.013")
    assert Decimal("0.01") < totals.top_tier_estimate < Decimal("0.02")
    # saved compares like with like: the two done documents it paid for, against the estimate
    assert totals.done_cost == Decimal("0.002")
    assert totals.saved == pytest.approx(float(1 - totals.done_cost / totals.top_tier_estimate))
    assert totals_record(totals)["type"] == "totals"
    record = result_record(results[1])
    assert record["tier_path"] == ["cheap", "mid"] and record["cost"] == 0.001
    digest = markdown_digest("demo", results, totals)
    assert "## a" in digest and "**rejected**: binary" in digest and "## Totals" in digest


def test_a_repeated_id_gets_its_own_rejected_row_instead_of_overwriting_the_first() -> None:
    first = Document("a", "docs/a.txt", "Aldera Systems shipped 3 releases.")
    again = Document("a", "copy/a.txt", "Another text under the same id.")
    collected_twice = Document("a", "docs/a.txt", None, rejected="docs/a.txt was already collected")
    prepared = prepare([first, again, collected_twice], max_chars=1000)
    assert [item.doc_id for item in prepared] == ["a", "a#2", "a#3"]
    assert prepared[0].rejected is None
    assert "duplicate id 'a' (first given by docs/a.txt)" in (prepared[1].rejected or "")
    assert prepared[2].rejected == "docs/a.txt was already collected"


def test_metadata_that_is_not_json_is_a_rejection_not_a_database_error() -> None:
    odd = Document("a", "a.txt", "Some text.", metadata={"score": float("nan")})
    [item] = prepare([odd], max_chars=1000)
    assert "metadata is not JSON" in (item.rejected or "")


def test_batches_of_records_are_named_after_their_records() -> None:
    one = documents_from_records([{"id": 1, "text": "First text."}])
    other = documents_from_records([{"id": 1, "text": "Other text."}])
    assert default_batch_name([], SPEC, one) == default_batch_name([], SPEC, list(one))
    assert default_batch_name([], SPEC, one) != default_batch_name([], SPEC, other)
    assert default_batch_name([], SPEC, one).startswith("summarize-documents-")
