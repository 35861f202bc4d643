"""Privacy modes on the real ledger (docs/privacy.md): a marker planted in the prompt is
stored in full, redacted everywhere, or erased when the query closes (its final answer after
the hold); retention erases old texts and keeps the figures. The fault suite runs the same
against 200 queries on real workers."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from stack import sim_config
from test_inprocess_pipeline import pipeline

from routeq.config import PrivacyConfig, PrivacyTag
from routeq.ledger import Ledger
from routeq.privacy import private_query
from routeq.records import NewQuery
from routeq.sim import SimModel
from routeq.tokens import count_tokens
from routeq.worker.reconcile import reconcile

pytestmark = pytest.mark.integration

MARKER = "planted.marker.7f3a@example.com"


def good_sim() -> Any:
    """Tiers that answer well (one call and one verdict per query), and the judge."""
    return sim_config(
        **{
            name: SimModel(name, quality=1.0, latency_ms=0, output_tokens=40)
            for name in ("sim-small", "sim-medium", "sim-large")
        }
    )


def rows_holding(engine: sa.Engine, needle: str) -> dict[str, int]:
    """How many rows of each ledger table mention ``needle`` anywhere (the whole row as text)."""
    found = {}
    with engine.connect() as conn:
        for table in ("queries", "hops", "provider_requests", "feedback", "batch_documents"):
            count = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} t WHERE t::text LIKE :needle"),
                {"needle": f"%{needle}%"},
            ).scalar_one()
            if count:
                found[table] = int(count)
    return found


def submit_and_run(runner: Any, settings: Any, metadata: dict[str, str]) -> Any:
    """Submit as ``Client.submit`` does (the privacy mode decided, texts redacted), then run."""
    question = f"Please forward the report to {MARKER} and explain what a ledger is."
    item = NewQuery(question, count_tokens(question), metadata=metadata)
    [query_id] = runner.submit([private_query(settings.privacy, item)])
    runner.run()
    return query_id


@pytest.fixture
def privacy() -> PrivacyConfig:
    return PrivacyConfig(
        mode="full",
        tags=[
            PrivacyTag(tag="privacy", value="redact", mode="redact"),
            PrivacyTag(tag="privacy", value="none", mode="none"),
        ],
        answer_hold_s=3600,
    )


def test_full_keeps_the_marker_and_redact_stores_it_nowhere(
    ledger: Ledger, privacy: PrivacyConfig
) -> None:
    with pipeline(ledger, good_sim(), privacy=privacy) as (runner, settings):
        full = submit_and_run(runner, settings, {})
        found_full = rows_holding(ledger.engine, MARKER)
        redacted = submit_and_run(runner, settings, {"privacy": "redact"})
    assert found_full.get("queries") == 1
    assert rows_holding(ledger.engine, MARKER) == found_full  # nothing more from the second
    with ledger.engine.connect() as conn:
        text, mode = conn.execute(
            sa.text("SELECT text, privacy FROM queries WHERE id = :id"), {"id": redacted}
        ).one()
    assert mode == "redact" and "[email]" in text and full != redacted


def test_none_erases_every_text_at_close_and_the_answer_after_the_hold(
    ledger: Ledger, privacy: PrivacyConfig
) -> None:
    with pipeline(ledger, good_sim(), privacy=privacy) as (runner, settings):
        query_id = submit_and_run(runner, settings, {"privacy": "none"})
        with ledger.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT text, messages, text_sha256, input_tokens, final_answer, status, "
                    "total_cost, texts_erased_at FROM queries WHERE id = :id"
                ),
                {"id": query_id},
            ).one()
            outputs = conn.execute(
                sa.text("SELECT kind, output IS NOT NULL FROM hops WHERE query_id = :id"),
                {"id": query_id},
            ).all()
        # Closed: the prompt is a hash and a token count; only the final answer is held
        assert row.status == "done" and row.text == "" and row.messages is None
        assert len(row.text_sha256) == 64 and row.input_tokens > 0 and row.total_cost > 0
        assert row.final_answer and row.texts_erased_at is None
        assert sum(kept for _, kept in outputs) == 1  # the answering call's output
        assert "queries" not in rows_holding(ledger.engine, "forward the report")
        # When the hold is over, the reconciler erases the answer too
        held = settings.model_copy(
            update={"privacy": privacy.model_copy(update={"answer_hold_s": 0})}
        )
        runner.runtime.settings = held
        assert reconcile(runner.runtime).texts_erased == 1
    with ledger.engine.connect() as conn:
        answer, erased_at = conn.execute(
            sa.text("SELECT final_answer, texts_erased_at FROM queries WHERE id = :id"),
            {"id": query_id},
        ).one()
        outputs_left = conn.execute(
            sa.text("SELECT count(*) FROM hops WHERE query_id = :id AND output IS NOT NULL"),
            {"id": query_id},
        ).scalar_one()
    assert answer is None and erased_at is not None and outputs_left == 0
    assert rows_holding(ledger.engine, MARKER) == {}


def test_retention_erases_old_texts_and_keeps_the_figures(
    ledger: Ledger, privacy: PrivacyConfig
) -> None:
    kept_for = privacy.model_copy(update={"retention_days": 7})
    with pipeline(ledger, good_sim(), privacy=kept_for) as (runner, settings):
        old = submit_and_run(runner, settings, {})
        recent = submit_and_run(runner, settings, {})
        with ledger.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE queries SET created_at = now() - interval '8 days' WHERE id = :id"),
                {"id": old},
            )
            before = conn.execute(
                sa.text("SELECT sum(cost), sum(input_tokens) FROM hops WHERE query_id = :id"),
                {"id": old},
            ).one()
        assert reconcile(runner.runtime).texts_erased == 1
        assert reconcile(runner.runtime).texts_erased == 0  # done once
    with ledger.engine.connect() as conn:
        texts = dict(
            conn.execute(
                sa.text("SELECT id, text FROM queries WHERE id IN (:a, :b)"),
                {"a": old, "b": recent},
            ).all()
        )
        after = conn.execute(
            sa.text("SELECT sum(cost), sum(input_tokens) FROM hops WHERE query_id = :id"),
            {"id": old},
        ).one()
    assert texts[old] == "" and MARKER in texts[recent]
    assert tuple(after) == tuple(before)


def test_the_pieces_of_an_open_document_keep_their_answers_until_it_closes(
    ledger: Ledger,
) -> None:
    # Given a privacy-none document with a finished piece, and a hold of zero
    [root] = ledger.submit([NewQuery("the whole document", 4, privacy="none")])
    [piece] = ledger.submit(
        [NewQuery("its first part", 3, parent_id=root.query_id, privacy="none", cache_key="k")]
    )
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE queries SET status = 'done', final_answer = 'part summary', "
                "finished_at = now() - interval '1 hour' WHERE id = :id"
            ),
            {"id": piece.query_id},
        )
    # When the privacy job runs while the document is open: the piece is left alone
    assert ledger.erase_texts(older_than_days=None, held_s=0, limit=100) == 0
    # Then the document closes: its pieces' texts and cache keys go with it, its own answer
    # stays for the hold, and the job erases it after
    ledger.fail_query(root.query_id, "closed for the test")
    with ledger.engine.connect() as conn:
        part = conn.execute(
            sa.text("SELECT text, final_answer, cache_key FROM queries WHERE id = :id"),
            {"id": piece.query_id},
        ).one()
    assert tuple(part) == ("", None, None)
    assert ledger.erase_texts(older_than_days=None, held_s=0, limit=100) == 1
    with ledger.engine.connect() as conn:
        erased = conn.execute(
            sa.text("SELECT count(*) FROM queries WHERE texts_erased_at IS NOT NULL")
        ).scalar_one()
    assert erased == 2


def test_retention_leaves_nothing_to_reuse(ledger: Ledger) -> None:
    [old] = ledger.submit([NewQuery("an old summary's text", 4, cache_key="doc-hash")])
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE queries SET status = 'done', final_answer = 'a summary', "
                "finished_at = now(), created_at = now() - interval '8 days' WHERE id = :id"
            ),
            {"id": old.query_id},
        )
    assert ledger.erase_texts(older_than_days=7, held_s=3600, limit=100) == 1
    with ledger.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT text, final_answer, cache_key, final_reason FROM queries")
        ).one()
    assert tuple(row) == ("", None, None, "texts erased (privacy)")
