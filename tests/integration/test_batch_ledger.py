"""Batches in the ledger against a real Postgres: registering, resuming, reuse, split documents."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from ledger_helpers import record_request

from routeq.batch.submit import document_query
from routeq.ledger import ClaimedHop, HopKind, HopStatus, Ledger, NewQuery, NextHop, QueryOutcome
from routeq.ledger import QueryStatus as QS
from routeq.ledger.batches import BatchSpecMismatchError, BatchStore, DocumentIn, UnknownBatchError
from routeq.records import HopResult, Usage
from routeq.summary_spec import SummarySpec

pytestmark = pytest.mark.integration

SPEC = SummarySpec()
LEASE, MAX_DELIVERIES = 600.0, 3


def doc(doc_id: str, text: str | None = None, rejected: str | None = None) -> DocumentIn:
    if rejected is not None:
        return DocumentIn(doc_id, f"{doc_id}.txt", "text", rejected=rejected)
    body = text or f"Aldera Systems memo {doc_id}."
    return DocumentIn(
        doc_id, f"{doc_id}.txt", "text", text=body, content_hash=f"hash-{body}", input_tokens=9
    )


def register(store: BatchStore, batch_id: uuid.UUID, *items: DocumentIn) -> dict[str, str]:
    registration = store.register(batch_id, list(items), document_query(SPEC))
    return {entry.doc_id: entry.action for entry in registration.documents}


def finish_query(ledger: Ledger, query_id: uuid.UUID, status: QS, cost: str = "0") -> list[NextHop]:
    """Claim the query's route hop and close the query with ``status`` (and some spend)."""
    claim = ledger.claim(query_id, 1, lease_s=LEASE, max_deliveries=MAX_DELIVERIES)
    assert claim.hop is not None
    if Decimal(cost):
        record_request(
            ledger,
            claim.hop,
            try_number=1,
            model="m",
            outcome="ok",
            latency_ms=1,
            input_price=Decimal(1),
            output_price=Decimal(1),
            cost=Decimal(cost),
        )
    outcome = QueryOutcome(status, "test", answer_seq=None)
    finished = ledger.finish_hop(
        claim.hop, status=HopStatus.DONE, result=HopResult(), outcome=outcome
    )
    assert finished
    return finished.publish


def test_registering_again_keeps_done_work_retries_failures_and_follows_changes(
    ledger: Ledger,
) -> None:
    store = BatchStore(ledger.engine)
    batch = store.open("b1", SPEC.model_dump(mode="json"))
    assert batch.created and store.open("b1", SPEC.model_dump(mode="json")).created is False
    items = [doc("a"), doc("b"), doc("c"), doc("x", rejected="bad")]
    first = store.register(batch.id, items, document_query(SPEC))
    assert [e.action for e in first.documents] == ["submitted"] * 3 + ["rejected"]
    assert [hop.kind for hop in first.publish] == [HopKind.ROUTE] * 3
    ids = {e.doc_id: e.query_id for e in first.documents}
    assert ids["a"] is not None and ids["b"] is not None
    finish_query(ledger, ids["a"], QS.DONE, cost="0.25")
    finish_query(ledger, ids["b"], QS.FAILED, cost="0.5")

    again = register(store, batch.id, doc("a"), doc("b"), doc("c"), doc("x", rejected="bad"))
    assert again == {"a": "kept", "b": "retried", "c": "kept", "x": "rejected"}
    changed = register(store, batch.id, doc("c", text="A new text for c."))
    assert changed == {"c": "submitted"}

    progress = store.progress(batch.id)
    assert (progress.total, progress.rejected, progress.done, progress.queued) == (4, 1, 1, 2)
    assert progress.spent == Decimal("0.75")  # the failed attempt was paid too
    assert not progress.complete
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT doc_id, submissions FROM batch_documents"))
        submissions = {row.doc_id: row.submissions for row in rows}
    assert submissions == {"a": 1, "b": 2, "c": 2, "x": 0}


def test_the_same_text_is_reused_across_batches_and_costs_nothing(ledger: Ledger) -> None:
    store = BatchStore(ledger.engine)
    spec = SPEC.model_dump(mode="json")
    first, second = store.open("first", spec), store.open("second", spec)
    [entry] = store.register(first.id, [doc("a")], document_query(SPEC)).documents
    assert entry.query_id is not None
    finish_query(ledger, entry.query_id, QS.DONE, cost="0.1")

    renamed = doc("renamed", text="Aldera Systems memo a.")
    reuse = store.register(second.id, [renamed], document_query(SPEC))
    assert [(e.action, e.query_id) for e in reuse.documents] == [("reused", entry.query_id)]
    assert reuse.publish == []
    progress = store.progress(second.id)
    assert (progress.done, progress.reused, progress.spent) == (1, 1, Decimal(0))
    [result] = store.results(second.id)
    assert (result.status, result.reused, result.cost) == ("done", True, Decimal(0))
    # another spec is another summary: not reused
    other = SummarySpec(max_words=60)
    third = store.open("third", other.model_dump(mode="json"))
    fresh = store.register(third.id, [doc("a")], document_query(other))
    assert [e.action for e in fresh.documents] == ["submitted"]


def test_a_batch_name_cannot_change_its_spec_and_unknown_batches_are_named(
    ledger: Ledger,
) -> None:
    store = BatchStore(ledger.engine)
    store.open("fixed", SPEC.model_dump(mode="json"))
    with pytest.raises(BatchSpecMismatchError, match="another summary spec"):
        store.open("fixed", SummarySpec(max_words=50).model_dump(mode="json"))
    batch = store.find("fixed")
    assert store.find(str(batch.id)).name == "fixed"
    with pytest.raises(UnknownBatchError, match="nope"):
        store.find("nope")


def split_document(ledger: Ledger, parts: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A document whose route step split it into ``parts`` child queries and a combine hop."""
    [root] = ledger.submit([NewQuery("long text", 9000, task={"kind": "summarize"})])
    claim = ledger.claim(root.query_id, 1, lease_s=LEASE, max_deliveries=MAX_DELIVERIES)
    assert claim.hop is not None
    children = [
        NewQuery(f"part {i}", 10, task={"role": "part", "part": i}, parent_id=root.query_id)
        for i in range(1, parts + 1)
    ]
    combine = NextHop(root.query_id, 2, HopKind.COMBINE, reason="split")
    finished = ledger.finish_hop(
        claim.hop, status=HopStatus.DONE, result=HopResult(), next_hop=combine, children=children
    )
    # the parts' route hops are published; the combine hop waits for them
    assert [hop.kind for hop in finished.publish] == [HopKind.ROUTE] * parts
    return root.query_id, [hop.query_id for hop in finished.publish]


def test_the_last_part_to_finish_publishes_the_combine_hop(ledger: Ledger) -> None:
    root, parts = split_document(ledger, 3)
    assert [c.status for c in ledger.children(root)] == ["queued"] * 3
    assert finish_query(ledger, parts[0], QS.DONE) == []
    assert finish_query(ledger, parts[2], QS.FAILED) == []
    assert finish_query(ledger, parts[1], QS.DONE) == [NextHop(root, 2, HopKind.COMBINE)]


def test_parts_finishing_at_once_still_publish_the_combine_hop(ledger: Ledger) -> None:
    root, parts = split_document(ledger, 8)
    published: list[list[NextHop]] = []
    barrier = threading.Barrier(len(parts))

    def close(part: uuid.UUID) -> None:
        barrier.wait()
        published.append(finish_query(ledger, part, QS.DONE))

    threads = [threading.Thread(target=close, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    combines = [hop for hops in published for hop in hops]
    assert len(published) == len(parts)
    assert combines and set(combines) == {NextHop(root, 2, HopKind.COMBINE)}


def test_a_document_closed_from_its_combine_takes_the_combined_answer(ledger: Ledger) -> None:
    root, [part] = split_document(ledger, 1)
    claim = ledger.claim(part, 1, lease_s=LEASE, max_deliveries=MAX_DELIVERIES)
    assert claim.hop is not None
    call = NextHop(part, 2, HopKind.CALL, "cheap", "sim-small")
    ledger.finish_hop(claim.hop, status=HopStatus.DONE, result=HopResult(), next_hop=call)
    called = ledger.claim(part, 2, lease_s=LEASE, max_deliveries=MAX_DELIVERIES).hop
    assert isinstance(called, ClaimedHop)
    done = QueryOutcome(QS.DONE, "judge passed", answer_seq=2)
    finished = ledger.finish_hop(
        called,
        status=HopStatus.DONE,
        result=HopResult(usage=Usage("The summary.", "stop", 0, 0, False, 1)),
        outcome=done,
    )
    assert finished.publish == [NextHop(root, 2, HopKind.COMBINE)]
    combine = ledger.claim(root, 2, lease_s=LEASE, max_deliveries=MAX_DELIVERIES).hop
    assert combine is not None
    closing = QueryOutcome(QS.DONE, "combined", from_query=part)
    assert ledger.finish_hop(combine, status=HopStatus.DONE, result=HopResult(), outcome=closing)
    view = ledger.view(root)
    assert (view.status, view.answer, view.final_tier) == ("done", "The summary.", "cheap")


def test_progress_counts_every_producer_feeding_one_batch(ledger: Ledger) -> None:
    # Given two producers registering different documents (and one shared) into one batch
    store = BatchStore(ledger.engine)
    batch = store.open("shared", SPEC.model_dump(mode="json"))
    barrier = threading.Barrier(2)

    def produce(prefix: str) -> None:
        items = [doc(f"{prefix}{i}") for i in range(20)] + [doc("common")]
        barrier.wait()
        for start in range(0, len(items), 5):
            store.register(batch.id, items[start : start + 5], document_query(SPEC))

    threads = [threading.Thread(target=produce, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then the ledger counts each document once, whichever producer registered it
    progress = store.progress(batch.id)
    assert (progress.total, progress.queued, progress.unsubmitted) == (41, 41, 0)
    with ledger.engine.connect() as conn:
        summaries = conn.execute(sa.text("SELECT count(*) FROM queries")).scalar_one()
    assert summaries == 41  # the shared document was submitted once


def test_the_backlog_of_a_split_document_heals_lost_publishes(ledger: Ledger) -> None:
    # Given a split whose parts' route messages were lost (the worker died after the commit)
    root, parts = split_document(ledger, 3)
    routes = {NextHop(part, 1, HopKind.ROUTE) for part in parts}
    # When a duplicate delivery of any hop of the family asks for the backlog
    assert set(ledger.backlog(root)) == routes
    assert set(ledger.backlog(parts[1])) == routes
    # And once every part is finished but the combine publish was lost
    for part in parts:
        finish_query(ledger, part, QS.DONE)
    # Then the backlog is the waiting combine hop
    assert ledger.backlog(parts[0]) == [NextHop(root, 2, HopKind.COMBINE)]
    assert ledger.backlog(uuid.uuid4()) == []


def test_re_registering_an_in_flight_document_republishes_its_waiting_hops(
    ledger: Ledger,
) -> None:
    store = BatchStore(ledger.engine)
    batch = store.open("heal", SPEC.model_dump(mode="json"))
    [entry] = store.register(batch.id, [doc("a")], document_query(SPEC)).documents
    assert entry.query_id is not None
    # the first publish was lost: registering again publishes the route hop once more
    again = store.register(batch.id, [doc("a")], document_query(SPEC))
    assert [e.action for e in again.documents] == ["kept"]
    assert again.publish == [NextHop(entry.query_id, 1, HopKind.ROUTE)]


def split_with_keys(ledger: Ledger, keys: list[str]) -> tuple[uuid.UUID, list[NextHop]]:
    """A document split into parts with the given cache keys; returns what was published."""
    [root] = ledger.submit([NewQuery("long text", 9000, task={"kind": "summarize"})])
    claim = ledger.claim(root.query_id, 1, lease_s=LEASE, max_deliveries=MAX_DELIVERIES)
    assert claim.hop is not None
    parts = [
        NewQuery(f"part {key}", 10, task={"role": "part"}, parent_id=root.query_id, cache_key=key)
        for key in keys
    ]
    combine = NextHop(root.query_id, 2, HopKind.COMBINE, reason="split")
    finished = ledger.finish_hop(
        claim.hop, status=HopStatus.DONE, result=HopResult(), next_hop=combine, children=parts
    )
    return root.query_id, finished.publish


def test_retrying_a_split_document_does_not_pay_again_for_its_finished_parts(
    ledger: Ledger,
) -> None:
    # Given a first attempt whose part A finished and part B failed
    first, published = split_with_keys(ledger, ["piece:A", "piece:B"])
    part_a, part_b = (hop.query_id for hop in published)
    finish_query(ledger, part_a, QS.DONE, cost="0.3")
    assert finish_query(ledger, part_b, QS.FAILED) == [NextHop(first, 2, HopKind.COMBINE)]
    # When the document is split again (a retry of the failed document)
    second, published = split_with_keys(ledger, ["piece:A", "piece:B"])
    # Then only part B is routed again; part A is reused, done, at no cost
    assert len(published) == 1 and published[0].kind is HopKind.ROUTE
    reused = [c for c in ledger.children(second) if c.status == "done"]
    assert len(reused) == 1 and "reused the summary of query" in (reused[0].reason or "")
    assert ledger.view(reused[0].id).total_cost == 0 and ledger.view(reused[0].id).hops == []
    assert finish_query(ledger, published[0].query_id, QS.DONE) == [
        NextHop(second, 2, HopKind.COMBINE)
    ]
    # And a document whose every part was summarised before combines at once
    third, published = split_with_keys(ledger, ["piece:A", "piece:B"])
    assert [(h.query_id, h.seq, h.kind) for h in published] == [(third, 2, HopKind.COMBINE)]
