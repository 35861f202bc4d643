"""reporting views (one definition of each report) and the metrics rollup kept by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:30:00

Views (the public reading surface; ``routeq metrics``, batch totals, the demo and the README's
SQL read these, never their own copies of the logic):

- ``escalations``: one row per escalation. A query escalates when a call hop lands on a tier
  none of its earlier call hops used; the first call is routing, not escalation. So a query with
  calls on cheap → mid → frontier has two rows, whether those calls succeeded or failed.
- ``query_journeys``: one row per query: hops, calls, the tier path, final tier and model, cost,
  end-to-end latency, escalations (a count of the rows above) and ``escalated``.
- ``spend_daily``: provider requests by UTC day, hop kind, tier and model: requests, errors,
  429s, tokens and cost (failed and retried attempts included: every attempt is a row).
- ``top_tier_counterfactual``: for each done query with an answer, the tokens of the call whose
  answer it kept (its last successful call). Priced at the top tier's prices (which live in the
  configuration, not the database), that is what the query would have cost sent straight to the
  top tier; ``cost`` is what it did cost, judging, retries and escalations included.
- ``batch_document_spend`` / ``batch_spend``: what each batch document and each batch paid
  (every query registered for it: parts, combines, failed attempts), whether the document's
  query family escalated, and its counterfactual tokens.

Metrics rollup (schema ``metrics``): the exporter must not aggregate whole ledger tables on every
scrape. Deferred constraint triggers on ``queries``, ``hops``, ``provider_requests`` and
``batch_documents`` append the *change* each row write makes to each metric to
``metrics.deltas`` (insert-only, so writers never wait on one another); a scrape folds the deltas
into ``metrics.totals`` (``metrics.fold()``) and reads that small table. Each metric is defined
once, in the ``metrics.*_deltas`` functions, as "what does this row contribute"; the triggers
call them with (old row, new row) and ``metrics.rebuild()`` replays them over the current rows
(after a TRUNCATE, a restore, or to check the rollup).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Upper bounds (seconds) of the latency histograms; routeq.metrics has the same two tuples.
MODEL_LATENCY_BOUNDS = "0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60"
QUERY_LATENCY_BOUNDS = "0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600"

VIEWS = [
    # The subqueries read one query's own hops through the (query_id, seq) index; OFFSET 0 keeps
    # the planner from folding the kind filter in and choosing the (kind, tier) index instead,
    # which scans every call hop of the ledger for each lookup when statistics are stale (the
    # metrics triggers look escalations up row by row). A call hop a hook denied or moved
    # before it called (``details.gate``) is not a call: it neither escalates nor is escalated
    # from, and no answer or counterfactual comes from it.
    """
    CREATE VIEW escalations AS
    SELECT h.query_id, h.seq, earlier.last_tier AS from_tier, h.tier AS to_tier, h.created_at
    FROM hops h
    CROSS JOIN LATERAL (
        SELECT count(*) AS calls,
               (array_agg(p.tier ORDER BY p.seq DESC))[1] AS last_tier,
               coalesce(bool_or(p.tier IS NOT DISTINCT FROM h.tier), false) AS same_tier
        FROM (SELECT o.kind, o.tier, o.seq, o.details FROM hops o
              WHERE o.query_id = h.query_id AND o.seq < h.seq OFFSET 0) p
        WHERE p.kind = 'call' AND NOT p.details ? 'gate'
    ) earlier
    WHERE h.kind = 'call' AND NOT h.details ? 'gate' AND earlier.calls > 0
      AND NOT earlier.same_tier
    """,
    """
    CREATE VIEW query_journeys AS
    SELECT q.id AS query_id, q.parent_id, q.batch_document_id, q.status,
           q.created_at, q.finished_at,
           j.hops, j.calls, j.tier_path, q.final_tier, q.final_model,
           q.total_cost AS cost,
           (extract(epoch FROM q.finished_at - q.created_at) * 1000)::bigint AS latency_ms,
           e.escalations, e.escalations > 0 AS escalated
    FROM queries q
    CROSS JOIN LATERAL (
        SELECT count(*) AS hops,
               count(*) FILTER (WHERE h.kind = 'call' AND NOT h.details ? 'gate') AS calls,
               coalesce(
                   array_agg(h.tier::text ORDER BY h.seq)
                       FILTER (WHERE h.kind = 'call' AND h.tier IS NOT NULL
                               AND NOT h.details ? 'gate'),
                   '{}'::text[]
               ) AS tier_path
        FROM hops h WHERE h.query_id = q.id
    ) j
    CROSS JOIN LATERAL (
        SELECT count(*) AS escalations FROM escalations x WHERE x.query_id = q.id
    ) e
    """,
    """
    CREATE VIEW spend_daily AS
    SELECT (r.created_at AT TIME ZONE 'UTC')::date AS day, h.kind, h.tier, r.model,
           count(*) AS requests,
           count(*) FILTER (WHERE r.outcome = 'error') AS errors,
           count(*) FILTER (WHERE r.http_status = 429) AS rate_limited,
           sum(r.input_tokens) AS input_tokens,
           sum(r.output_tokens) AS output_tokens,
           sum(r.cost) AS cost,
           coalesce(sum(r.max_cost) FILTER (WHERE r.outcome = 'unknown'), 0) AS unknown_max_cost
    FROM provider_requests r JOIN hops h ON h.id = r.hop_id
    GROUP BY 1, 2, 3, 4
    """,
    """
    CREATE VIEW top_tier_counterfactual AS
    SELECT q.id AS query_id, q.parent_id, q.batch_document_id, q.total_cost AS cost,
           a.input_tokens, a.output_tokens
    FROM queries q
    CROSS JOIN LATERAL (
        SELECT coalesce(h.input_tokens, 0) AS input_tokens,
               coalesce(h.output_tokens, 0) AS output_tokens
        FROM (SELECT o.kind, o.status, o.seq, o.input_tokens, o.output_tokens, o.details
              FROM hops o
              WHERE o.query_id = q.id OFFSET 0) h  -- the query's own hops (see escalations)
        WHERE h.kind = 'call' AND h.status = 'done' AND NOT h.details ? 'gate'
        ORDER BY h.seq DESC LIMIT 1
    ) a
    WHERE q.status = 'done'
    """,
    """
    CREATE VIEW batch_document_spend AS
    SELECT d.batch_id, d.id AS document_id, d.doc_id, d.reused,
           CASE WHEN d.rejected IS NOT NULL THEN 'rejected'
                WHEN root.status IS NULL THEN 'unsubmitted'
                ELSE root.status END AS status,
           coalesce(paid.spent, 0) AS spent,
           coalesce(family.escalated, false) AS escalated,
           coalesce(family.input_tokens, 0) AS top_tier_input_tokens,
           coalesce(family.output_tokens, 0) AS top_tier_output_tokens
    FROM batch_documents d
    LEFT JOIN queries root ON root.id = d.query_id
    LEFT JOIN LATERAL (
        SELECT sum(q.total_cost) AS spent FROM queries q WHERE q.batch_document_id = d.id
    ) paid ON true
    LEFT JOIN LATERAL (
        SELECT bool_or(j.escalated) AS escalated,
               sum(c.input_tokens) AS input_tokens,
               sum(c.output_tokens) AS output_tokens
        FROM query_journeys j
        LEFT JOIN top_tier_counterfactual c ON c.query_id = j.query_id
        WHERE j.query_id = d.query_id OR j.parent_id = d.query_id
    ) family ON d.query_id IS NOT NULL
    """,
    """
    CREATE VIEW batch_spend AS
    SELECT b.id AS batch_id, b.name, count(s.document_id) AS documents,
           coalesce(sum(s.spent), 0) AS spent
    FROM batches b LEFT JOIN batch_document_spend s ON s.batch_id = b.id
    GROUP BY b.id, b.name
    """,
]

ROLLUP = [
    "CREATE SCHEMA metrics",
    """
    CREATE TABLE metrics.deltas (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        labels text[] NOT NULL,
        value numeric NOT NULL
    )
    """,
    """
    CREATE TABLE metrics.totals (
        name text NOT NULL,
        labels text[] NOT NULL,
        value numeric NOT NULL,
        PRIMARY KEY (name, labels)
    )
    """,
    f"""
    CREATE FUNCTION metrics.bucket(seconds numeric, histogram text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT coalesce(
            (SELECT min(u.bound) FROM unnest(
                CASE histogram WHEN 'query' THEN ARRAY[{QUERY_LATENCY_BOUNDS}]::numeric[]
                               ELSE ARRAY[{MODEL_LATENCY_BOUNDS}]::numeric[] END) AS u (bound)
             WHERE seconds <= u.bound)::text,
            '+Inf')
    $$
    """,
    """
    CREATE FUNCTION metrics.document_state(d batch_documents) RETURNS text
    LANGUAGE plpgsql AS $$
    DECLARE
        state text;
    BEGIN
        IF d IS NULL OR d.id IS NULL THEN
            RETURN NULL;
        ELSIF d.rejected IS NOT NULL THEN
            RETURN 'rejected';
        ELSIF d.query_id IS NULL THEN
            RETURN 'unsubmitted';
        END IF;
        -- FOR SHARE: a concurrent change of that query's status waits for us (or we for it),
        -- so the two transactions' deltas cannot both miss the other's change.
        SELECT q.status INTO state FROM queries q WHERE q.id = d.query_id FOR SHARE;
        RETURN coalesce(state, 'unsubmitted');
    END $$
    """,
    """
    CREATE FUNCTION metrics.query_deltas(o queries, n queries)
    RETURNS TABLE (name text, labels text[], value numeric)
    LANGUAGE plpgsql AS $$
    DECLARE
        was_final boolean := o.id IS NOT NULL AND o.status IN ('done', 'failed');
        docs numeric;
        seconds numeric;
        cf record;
    BEGIN
        IF o.id IS NOT NULL AND (n.id IS NULL OR o.status <> n.status) THEN
            RETURN QUERY SELECT 'queries', ARRAY[o.status::text], -1::numeric;
        END IF;
        IF n.id IS NOT NULL AND (o.id IS NULL OR o.status <> n.status) THEN
            RETURN QUERY SELECT 'queries', ARRAY[n.status::text], 1::numeric;
        END IF;
        IF n.id IS NULL THEN
            RETURN;  -- a deleted query leaves the gauges; counters keep what happened
        END IF;
        -- batch documents follow the status of the query they point at
        IF o.id IS NOT NULL AND o.status <> n.status THEN
            SELECT count(*) INTO docs FROM batch_documents d
            WHERE d.query_id = n.id AND d.rejected IS NULL;
            IF docs > 0 THEN
                RETURN QUERY SELECT 'batch_documents', ARRAY[o.status::text], -docs;
                RETURN QUERY SELECT 'batch_documents', ARRAY[n.status::text], docs;
            END IF;
        END IF;
        IF n.status IN ('done', 'failed') AND NOT was_final THEN
            RETURN QUERY SELECT 'queries_finished',
                ARRAY[n.status::text, coalesce(n.final_tier, '')::text], 1::numeric;
            IF n.parent_id IS NULL THEN  -- end to end: what a producer waited for
                seconds := greatest(
                    extract(epoch FROM coalesce(n.finished_at, now()) - n.created_at), 0);
                RETURN QUERY SELECT 'query_latency_bucket',
                    ARRAY[n.status::text, metrics.bucket(seconds, 'query')], 1::numeric;
                RETURN QUERY SELECT 'query_latency_sum', ARRAY[n.status::text], seconds;
            END IF;
            IF n.status = 'done' THEN
                SELECT c.input_tokens, c.output_tokens INTO cf
                FROM top_tier_counterfactual c WHERE c.query_id = n.id;
                IF FOUND THEN
                    RETURN QUERY SELECT 'counterfactual_tokens', ARRAY['input'],
                        cf.input_tokens::numeric;
                    RETURN QUERY SELECT 'counterfactual_tokens', ARRAY['output'],
                        cf.output_tokens::numeric;
                    RETURN QUERY SELECT 'counterfactual_queries', ARRAY[]::text[], 1::numeric;
                    RETURN QUERY SELECT 'comparable_cost', ARRAY[]::text[], n.total_cost;
                END IF;
            END IF;
        ELSIF was_final AND n.status = 'done' AND o.status = 'done'
              AND n.total_cost <> o.total_cost
              AND EXISTS (SELECT 1 FROM top_tier_counterfactual c WHERE c.query_id = n.id) THEN
            -- a late request (a superseded delivery) still adds to a done query's cost
            RETURN QUERY SELECT 'comparable_cost', ARRAY[]::text[], n.total_cost - o.total_cost;
        END IF;
    END $$
    """,
    """
    CREATE FUNCTION metrics.hop_deltas(o hops, n hops)
    RETURNS TABLE (name text, labels text[], value numeric)
    LANGUAGE plpgsql AS $$
    DECLARE
        tier text := coalesce(n.tier, '');
    BEGIN
        IF n.id IS NULL THEN
            RETURN;  -- hop counters keep what happened
        END IF;
        IF o.id IS NULL AND n.kind = 'call'
           AND EXISTS (SELECT 1 FROM escalations e WHERE e.query_id = n.query_id
                       AND e.seq = n.seq) THEN
            RETURN QUERY SELECT 'escalations', ARRAY[tier], 1::numeric;
        END IF;
        IF n.status IN ('done', 'failed')
           AND (o.id IS NULL OR o.status NOT IN ('done', 'failed')) THEN
            RETURN QUERY SELECT 'hops',
                ARRAY[n.kind::text, tier,
                      CASE WHEN n.details ? 'gate' THEN 'gated' ELSE n.status::text END],
                1::numeric;
            IF n.kind = 'judge' AND n.passed IS NOT NULL THEN
                RETURN QUERY SELECT 'judge_verdicts',
                    ARRAY[tier, CASE WHEN n.passed THEN 'true' ELSE 'false' END], 1::numeric;
                IF n.details->>'source' = 'judge-error' THEN
                    -- the judge itself failed: the step records what became of the answer
                    -- (accepted unjudged: fail open, or fail closed with no tier above; or
                    -- failed closed: escalated)
                    RETURN QUERY SELECT 'judge_errors',
                        ARRAY[tier, coalesce(n.details->>'judge_outcome',
                                             CASE WHEN n.passed THEN 'accepted_unjudged'
                                                  ELSE 'failed_closed' END)],
                        1::numeric;
                END IF;
            ELSIF n.kind = 'judge' AND n.status = 'failed' THEN
                -- the judge step gave up after its delivery cap: the fail mode settled it
                RETURN QUERY SELECT 'judge_errors', ARRAY[tier, 'gave_up'], 1::numeric;
            END IF;
        END IF;
    END $$
    """,
    """
    CREATE FUNCTION metrics.request_deltas(o provider_requests, n provider_requests)
    RETURNS TABLE (name text, labels text[], value numeric)
    LANGUAGE plpgsql AS $$
    DECLARE
        kind text;
        tier text;
        seconds numeric;
    BEGIN
        IF o.id IS NOT NULL AND (n.id IS NULL OR o.outcome <> n.outcome) THEN
            RETURN QUERY SELECT 'provider_requests', ARRAY[o.outcome::text], -1::numeric;
        END IF;
        IF n.id IS NOT NULL AND (o.id IS NULL OR o.outcome <> n.outcome) THEN
            RETURN QUERY SELECT 'provider_requests', ARRAY[n.outcome::text], 1::numeric;
        END IF;
        IF n.id IS NULL THEN
            RETURN;
        END IF;
        SELECT h.kind, coalesce(h.tier, '') INTO kind, tier FROM hops h WHERE h.id = n.hop_id;
        IF n.cost IS DISTINCT FROM o.cost THEN
            RETURN QUERY SELECT 'cost_usd', ARRAY[kind, tier, n.model::text],
                n.cost - coalesce(o.cost, 0);
        END IF;
        IF n.input_tokens IS DISTINCT FROM o.input_tokens THEN
            RETURN QUERY SELECT 'tokens', ARRAY[kind, tier, 'input'],
                (n.input_tokens - coalesce(o.input_tokens, 0))::numeric;
        END IF;
        IF n.output_tokens IS DISTINCT FROM o.output_tokens THEN
            RETURN QUERY SELECT 'tokens', ARRAY[kind, tier, 'output'],
                (n.output_tokens - coalesce(o.output_tokens, 0))::numeric;
        END IF;
        IF n.outcome IS DISTINCT FROM o.outcome THEN
            IF n.outcome = 'error' THEN
                RETURN QUERY SELECT 'provider_errors',
                    ARRAY[kind, tier, n.model::text, coalesce(n.http_status::text, 'none')],
                    1::numeric;
            ELSIF n.outcome = 'ok' AND n.latency_ms IS NOT NULL THEN
                seconds := n.latency_ms / 1000.0;
                RETURN QUERY SELECT 'model_latency_bucket',
                    ARRAY[kind, tier, metrics.bucket(seconds, 'model')], 1::numeric;
                RETURN QUERY SELECT 'model_latency_sum', ARRAY[kind, tier], seconds;
            END IF;
        END IF;
    END $$
    """,
    """
    CREATE FUNCTION metrics.document_deltas(o batch_documents, n batch_documents)
    RETURNS TABLE (name text, labels text[], value numeric)
    LANGUAGE plpgsql AS $$
    DECLARE
        before text := metrics.document_state(o);
        after text := metrics.document_state(n);
    BEGIN
        IF before IS DISTINCT FROM after THEN
            IF before IS NOT NULL THEN
                RETURN QUERY SELECT 'batch_documents', ARRAY[before], -1::numeric;
            END IF;
            IF after IS NOT NULL THEN
                RETURN QUERY SELECT 'batch_documents', ARRAY[after], 1::numeric;
            END IF;
        END IF;
    END $$
    """,
]

# One trigger function per table: append what the row write changed. Deferred to the commit, so
# the lookups (a hop's tier, a query's accepted call) see the whole transaction's writes.
TABLES = {
    "queries": "query_deltas",
    "hops": "hop_deltas",
    "provider_requests": "request_deltas",
    "batch_documents": "document_deltas",
}


def _trigger_sql(table: str, deltas: str) -> list[str]:
    return [
        f"""
        CREATE FUNCTION metrics.on_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO metrics.deltas (name, labels, value)
            SELECT d.name, d.labels, d.value
            FROM metrics.{deltas}(OLD, NEW) d  -- OLD is NULL on INSERT, NEW on DELETE
            WHERE d.value <> 0;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE CONSTRAINT TRIGGER metrics_rollup AFTER INSERT OR UPDATE OR DELETE ON {table}
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION metrics.on_{table}()
        """,
        f"""
        CREATE TRIGGER metrics_truncated AFTER TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION metrics.on_truncate()
        """,
    ]


MAINTENANCE = [
    """
    CREATE FUNCTION metrics.fold() RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        folded bigint;
    BEGIN
        -- One folder at a time; writers never take this lock (they only insert deltas).
        PERFORM pg_advisory_xact_lock(hashtext('routeq.metrics.fold'));
        WITH moved AS (
            DELETE FROM metrics.deltas RETURNING name, labels, value
        ), summed AS (
            SELECT name, labels, sum(value) AS value FROM moved GROUP BY name, labels
        )
        INSERT INTO metrics.totals AS t (name, labels, value)
        SELECT name, labels, value FROM summed ORDER BY name, labels
        ON CONFLICT (name, labels) DO UPDATE SET value = t.value + excluded.value;
        GET DIAGNOSTICS folded = ROW_COUNT;
        RETURN folded;
    END $$
    """,
    """
    CREATE FUNCTION metrics.rebuild() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        -- Every current row replayed as if it had just been inserted. Counters then count
        -- the rows there are (history of deleted rows is gone with them).
        PERFORM pg_advisory_xact_lock(hashtext('routeq.metrics.fold'));
        DELETE FROM metrics.deltas;
        DELETE FROM metrics.totals;
        INSERT INTO metrics.deltas (name, labels, value)
        SELECT d.name, d.labels, d.value FROM queries q,
               metrics.query_deltas(NULL, q) d WHERE d.value <> 0
        UNION ALL
        SELECT d.name, d.labels, d.value FROM hops h,
               metrics.hop_deltas(NULL, h) d WHERE d.value <> 0
        UNION ALL
        SELECT d.name, d.labels, d.value FROM provider_requests r,
               metrics.request_deltas(NULL, r) d WHERE d.value <> 0
        UNION ALL
        SELECT d.name, d.labels, d.value FROM batch_documents b,
               metrics.document_deltas(NULL, b) d WHERE d.value <> 0;
    END $$
    """,
    """
    CREATE FUNCTION metrics.on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM metrics.rebuild();  -- row triggers do not see a TRUNCATE
        RETURN NULL;
    END $$
    """,
]


def upgrade() -> None:
    for statement in VIEWS + ROLLUP + MAINTENANCE:
        op.execute(statement)
    for table, deltas in TABLES.items():
        for statement in _trigger_sql(table, deltas):
            op.execute(statement)
    op.execute("SELECT metrics.rebuild()")  # an existing ledger starts with its rows counted
    op.execute("SELECT metrics.fold()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS metrics_truncated ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS metrics_rollup ON {table}")
    op.execute("DROP SCHEMA metrics CASCADE")
    for view in (
        "batch_spend",
        "batch_document_spend",
        "top_tier_counterfactual",
        "spend_daily",
        "query_journeys",
        "escalations",
    ):
        op.execute(f"DROP VIEW IF EXISTS {view}")
