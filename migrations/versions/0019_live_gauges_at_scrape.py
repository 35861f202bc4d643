"""performance: live gauges are counted at the scrape; checks and trigger conditions made cheap

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08 04:20:00

* **Live gauges.** The rollup kept three gauges row by row: queries and batch documents by
  status, provider requests by outcome. Every query moved them at two commits on its way
  (queued to running at its route's claim, a request's ``pending`` row before the call), each a
  deferred trigger firing, for states that last milliseconds and that nobody reads between two
  scrapes. Live rows are few and have partial indexes (``ix_queries_live``,
  ``ix_provider_requests_pending``), so the view ``metrics.live_gauges`` counts them when a
  scrape reads (``metrics_totals.sql``), and the rollup keeps only the other states: what the
  triggers and ``metrics.rebuild()`` append leaves those gauges' live labels out
  (``metrics.counted_at_scrape``). The delta functions, which define each metric, are
  unchanged. The triggers of ``queries`` and ``provider_requests`` now fire only for a change
  their delta function emits for once the live labels are left out: a query's status reaching
  or leaving done or failed (or a done query's cost changing), a request with an outcome or an
  amount. ``hops`` no longer has a delete trigger (``metrics.hop_deltas`` emits nothing for a
  deleted hop), and the statement trigger of 0016 that counted live queries as inserted goes.
* **Cheaper to check.** At every statement that inserts or updates rows of a table, Postgres
  reads that table's ``CHECK`` constraints, and its triggers' ``WHEN`` conditions, back from
  their stored form and simplifies them before it evaluates them. Written ``status IN
  ('queued', ...)``, each is an array built of one constant per value and cast to ``text[]``:
  in a profile of the hot path the ``CHECK`` constraints alone took about a tenth of a
  backend's time. They are now written as one constant array (``status::text = ANY
  ('{queued,...}'::text[])``), which allows the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# -- the constraints -----------------------------------------------------------------------------

# (table, constraint, column): the values it allows (as 0001, 0002, 0004, 0006 and 0013 left
# them).
_CHECKS = {
    ("queries", "query_status", "status"): ("queued", "running", "done", "failed"),
    ("queries", "query_role", "role"): ("answer", "document", "part", "combine", "shadow", "rerun"),
    ("queries", "query_privacy", "privacy"): ("full", "redact", "none"),
    ("hops", "hop_status", "status"): ("queued", "running", "done", "failed"),
    ("hops", "hop_kind", "kind"): ("route", "call", "judge", "combine"),
    ("provider_requests", "request_outcome", "outcome"): (
        "pending",
        "ok",
        "error",
        "unknown",
        "superseded",
    ),
}


def _any(column: str, values: Sequence[str]) -> str:
    """``column`` is one of ``values``, as a single constant array."""
    return f"{column}::text = ANY ('{{{','.join(values)}}}'::text[])"


def _listed(column: str, values: Sequence[str]) -> str:
    """The same condition as an ``IN`` list (how the earlier migrations wrote it)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_checks(condition: Callable[[str, Sequence[str]], str]) -> None:
    """Each table's constraints in one ``ALTER TABLE``: one scan of its rows checks them all."""
    clauses: dict[str, list[str]] = {}
    for (table, name, column), values in _CHECKS.items():
        clauses.setdefault(table, []).append(
            f"DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK ({condition(column, values)})"
        )
    for table, changes in clauses.items():
        op.execute(f"ALTER TABLE {table} {', '.join(changes)}")


# -- the rollup ----------------------------------------------------------------------------------

_LIVE_GAUGES = """
CREATE VIEW metrics.live_gauges AS
SELECT 'queries'::text AS name, ARRAY[q.status::text] AS labels, count(*)::numeric AS value
FROM queries q WHERE q.status IN ('queued', 'running') GROUP BY q.status
UNION ALL
SELECT 'provider_requests', ARRAY[r.outcome::text], count(*)::numeric
FROM provider_requests r WHERE r.outcome = 'pending' GROUP BY r.outcome
UNION ALL
SELECT 'batch_documents', ARRAY[q.status::text], count(*)::numeric
FROM queries q JOIN batch_documents d ON d.query_id = q.id
WHERE q.status IN ('queued', 'running') AND d.rejected IS NULL
GROUP BY q.status
"""

# Inlined where it is called (a one-expression SQL function).
_COUNTED_AT_SCRAPE = """
CREATE FUNCTION metrics.counted_at_scrape(name text, labels text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (name IN ('queries', 'batch_documents') AND labels IN ('{queued}', '{running}'))
        OR (name = 'provider_requests' AND labels = '{pending}')
$$
"""

_DELTAS = {
    "queries": "query_deltas",
    "provider_requests": "request_deltas",
    "batch_documents": "document_deltas",
}


def _trigger_function(table: str, deltas: str, *, live: bool) -> str:
    kept = "" if live else " AND NOT metrics.counted_at_scrape(d.name, d.labels)"
    return f"""
    CREATE OR REPLACE FUNCTION metrics.on_{table}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, metrics, pg_temp AS $$
    BEGIN
        INSERT INTO metrics.deltas (name, labels, value)
        SELECT d.name, d.labels, d.value
        FROM metrics.{deltas}(OLD, NEW) d  -- OLD is NULL on INSERT, NEW on DELETE
        WHERE d.value <> 0{kept};
        RETURN NULL;
    END $$
    """


def _rebuild(*, live: bool) -> str:
    kept = "" if live else " AND NOT metrics.counted_at_scrape(d.name, d.labels)"
    replays = "\n        UNION ALL\n".join(
        f"        SELECT d.name, d.labels, d.value FROM {table} r,\n"
        f"               metrics.{deltas}(NULL, r) d WHERE d.value <> 0{kept}"
        for table, deltas in (
            ("queries", "query_deltas"),
            ("hops", "hop_deltas"),
            ("provider_requests", "request_deltas"),
            ("batch_documents", "document_deltas"),
        )
    )
    return f"""
    CREATE OR REPLACE FUNCTION metrics.rebuild() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        -- Every current row replayed as if it had just been inserted. Counters then count
        -- the rows there are (history of deleted rows is gone with them).
        PERFORM pg_advisory_xact_lock(hashtext('routeq.metrics.fold'));
        DELETE FROM metrics.deltas;
        DELETE FROM metrics.totals;
        INSERT INTO metrics.deltas (name, labels, value)
{replays};
    END $$
    """


def _trigger(name: str, event: str, table: str, when: str | None = None) -> str:
    condition = f"WHEN ({when}) " if when else ""
    return (
        f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {condition}"
        f"EXECUTE FUNCTION metrics.on_{table}()"
    )


_FINAL = ("done", "failed")

# The row triggers after this migration: (name, event, table, WHEN).
_TRIGGERS = [
    ("metrics_rollup", "DELETE", "queries", _any("OLD.status", _FINAL)),
    ("metrics_rollup_insert", "INSERT", "queries", _any("NEW.status", _FINAL)),
    (
        "metrics_rollup_update",
        "UPDATE",
        "queries",
        f"(OLD.status <> NEW.status AND ({_any('OLD.status', _FINAL)} "
        f"OR {_any('NEW.status', _FINAL)})) "
        "OR (OLD.status::text = 'done' AND NEW.total_cost IS DISTINCT FROM OLD.total_cost)",
    ),
    (
        "metrics_rollup_insert",
        "INSERT",
        "hops",
        f"(NEW.kind::text = 'call' AND NEW.seq > 2) OR {_any('NEW.status', _FINAL)}",
    ),
    (
        "metrics_rollup_update",
        "UPDATE",
        "hops",
        f"{_any('NEW.status', _FINAL)} AND NOT {_any('OLD.status', _FINAL)}",
    ),
    (
        "metrics_rollup_insert",
        "INSERT",
        "provider_requests",
        "NEW.outcome::text <> 'pending' OR NEW.cost <> 0 "
        "OR NEW.input_tokens <> 0 OR NEW.output_tokens <> 0",
    ),
    (
        "metrics_rollup_update",
        "UPDATE",
        "provider_requests",
        "OLD.outcome <> NEW.outcome OR OLD.cost <> NEW.cost "
        "OR OLD.input_tokens <> NEW.input_tokens OR OLD.output_tokens <> NEW.output_tokens",
    ),
    ("metrics_rollup", "DELETE", "provider_requests", "OLD.outcome::text <> 'pending'"),
]

# The row triggers 0018 left: (name, event, table, WHEN), for the downgrade.
_FINAL_LISTED = "('done', 'failed')"
_TRIGGERS_OF_0018 = [
    ("metrics_rollup", "DELETE", "queries", None),
    ("metrics_rollup_insert", "INSERT", "queries", f"NEW.status IN {_FINAL_LISTED}"),
    (
        "metrics_rollup_update",
        "UPDATE",
        "queries",
        "OLD.status IS DISTINCT FROM NEW.status OR "
        "(OLD.status = 'done' AND NEW.total_cost IS DISTINCT FROM OLD.total_cost)",
    ),
    ("metrics_rollup", "DELETE", "hops", None),
    (
        "metrics_rollup_insert",
        "INSERT",
        "hops",
        f"(NEW.kind = 'call' AND NEW.seq > 2) OR NEW.status IN {_FINAL_LISTED}",
    ),
    (
        "metrics_rollup_update",
        "UPDATE",
        "hops",
        f"NEW.status IN {_FINAL_LISTED} AND OLD.status NOT IN {_FINAL_LISTED}",
    ),
    ("metrics_rollup", "INSERT OR UPDATE OR DELETE", "provider_requests", None),
]

# 0016's statement trigger, restored on downgrade.
_LIVE_QUERY_INSERTS = f"""
CREATE FUNCTION metrics.on_query_inserts() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, metrics, pg_temp AS $$
BEGIN
    INSERT INTO metrics.deltas (name, labels, value)
    SELECT 'queries', ARRAY[status::text], count(*)::numeric
    FROM inserted WHERE status NOT IN {_FINAL_LISTED}
    GROUP BY status;
    RETURN NULL;
END $$
"""


def _drop_triggers(triggers: list[tuple[str, str, str, str | None]]) -> None:
    for name, _event, table, _when in triggers:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")


# A writer that is already running the old trigger functions must not append an unfiltered
# live delta after the data step below (or a filtered one after the downgrade's): the ledger's
# tables are not written while the triggers change.
_LOCK = "LOCK TABLE queries, hops, provider_requests, batch_documents IN SHARE ROW EXCLUSIVE MODE"


def upgrade() -> None:
    op.execute(_LOCK)
    _replace_checks(_any)
    op.execute(_COUNTED_AT_SCRAPE)
    op.execute(_LIVE_GAUGES)
    # The scrape reads the deltas not folded yet; a queue that is emptied at every fold is never
    # worth the start-up of parallel workers, whatever its dead rows make it look.
    op.execute("ALTER TABLE metrics.deltas SET (parallel_workers = 0)")
    for table, deltas in _DELTAS.items():
        op.execute(_trigger_function(table, deltas, live=False))
    op.execute(_rebuild(live=False))
    op.execute("DROP TRIGGER metrics_rollup_live_inserts ON queries")
    op.execute("DROP FUNCTION metrics.on_query_inserts()")
    _drop_triggers(_TRIGGERS_OF_0018)
    for trigger in _TRIGGERS:
        op.execute(_trigger(*trigger))
    # What the rollup held for live states is counted at the scrape from now on.
    op.execute("SELECT metrics.fold()")
    op.execute("DELETE FROM metrics.totals WHERE metrics.counted_at_scrape(name, labels)")


def downgrade() -> None:
    op.execute(_LOCK)
    _drop_triggers(_TRIGGERS)
    for trigger in _TRIGGERS_OF_0018:
        op.execute(_trigger(*trigger))
    op.execute(_LIVE_QUERY_INSERTS)
    op.execute(
        "CREATE TRIGGER metrics_rollup_live_inserts AFTER INSERT ON queries "
        "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
        "EXECUTE FUNCTION metrics.on_query_inserts()"
    )
    for table, deltas in _DELTAS.items():
        op.execute(_trigger_function(table, deltas, live=True))
    op.execute(_rebuild(live=True))
    # The rollup keeps the live gauges again, starting from what there is now.
    op.execute(
        "INSERT INTO metrics.deltas (name, labels, value) "
        "SELECT name, labels, value FROM metrics.live_gauges"
    )
    op.execute("DROP VIEW metrics.live_gauges")
    op.execute("ALTER TABLE metrics.deltas RESET (parallel_workers)")
    op.execute("DROP FUNCTION metrics.counted_at_scrape(text, text[])")
    _replace_checks(_listed)
