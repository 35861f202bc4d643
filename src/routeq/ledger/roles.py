"""Least privilege on the ledger: three group roles, what each may do, and a check of it.

``role_statements(prefix)`` is the SQL that creates (or brings up to date) the roles a
deployment grants to its login users (docs/roles.md):

- ``<prefix>worker``: workers, producers (the client, ``routeq submit``/``summarize``), the
  reconciler and the metrics exporter. Reads and writes ledger rows (and the metrics rollup);
  deletes only settled budget reservations; never changes the schema.
- ``<prefix>reporting``: ``routeq report``, ``routeq status``, SQL on the views. Reads only.
- ``<prefix>gateway``: the HTTP gateway to come. Submits queries and reads its own: row-level
  security shows it only the queries whose ``api_key_id`` is its connection's
  ``routeq.api_key_id`` setting, and their hops; it can update nothing.

Row-level security is turned on for ``queries`` and ``hops``; the worker and reporting roles
see every row, and the schema's owner (who runs the migrations) is not subject to it. The
grants cover the tables that exist and, by default privileges, those the owner creates later;
running the statements again after a migration is harmless.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

ROLES = ("worker", "reporting", "gateway")
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_LEDGER_SCHEMAS = ("public", "metrics")


def role_names(prefix: str = "routeq_") -> dict[str, str]:
    if not _PREFIX.match(prefix):
        raise ValueError(f"role prefix {prefix!r}: lower-case letters, digits and _ only")
    return {role: f"{prefix}{role}" for role in ROLES}


def role_statements(prefix: str = "routeq_") -> list[str]:
    """The statements that create the roles and grant them what they may do."""
    names = role_names(prefix)
    worker, reporting, gateway = names["worker"], names["reporting"], names["gateway"]
    everyone = ", ".join(names.values())
    statements = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') "
        f"THEN CREATE ROLE {name} NOLOGIN; END IF; END $$"
        for name in names.values()
    ]
    statements += [
        f"GRANT USAGE ON SCHEMA public TO {everyone}",
        f"GRANT USAGE ON SCHEMA metrics TO {worker}, {reporting}",
        # workers: rows, not the schema
        f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {worker}",
        f"GRANT DELETE ON budget_reservations TO {worker}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA metrics TO {worker}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public, metrics TO {worker}",
        # reporting: reads only
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public, metrics TO {reporting}",
        # (the metrics rollup's triggers run as the schema's owner: writers need nothing on
        # schema metrics; the reconciler and the exporter fold it, as workers)
        # the gateway: submit, and read its own
        f"GRANT SELECT, INSERT ON queries, hops TO {gateway}",
        f"GRANT USAGE ON SEQUENCE hops_id_seq TO {gateway}",
    ]
    for schema in _LEDGER_SCHEMAS:
        statements += [
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {reporting}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
            f"GRANT SELECT, INSERT, UPDATE ON TABLES TO {worker}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE ON SEQUENCES TO {worker}",
        ]
    own = "api_key_id = current_setting('routeq.api_key_id', true)"
    policies = {
        "queries": {
            f"{prefix}all_queries": (f"{worker}, {reporting}", "true"),
            f"{prefix}own_queries": (gateway, own),
        },
        "hops": {
            f"{prefix}all_hops": (f"{worker}, {reporting}", "true"),
            f"{prefix}own_hops": (gateway, "query_id IN (SELECT id FROM queries)"),
        },
    }
    for table, table_policies in policies.items():
        statements.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        for policy, (roles, condition) in table_policies.items():
            statements += [
                f"DROP POLICY IF EXISTS {policy} ON {table}",
                f"CREATE POLICY {policy} ON {table} TO {roles} "
                f"USING ({condition}) WITH CHECK ({condition})",
            ]
    return statements


def apply_roles(engine: Engine, prefix: str = "routeq_") -> None:
    """Create or update the roles, in one transaction (as the schema's owner)."""
    with engine.begin() as conn:
        for statement in role_statements(prefix):
            conn.execute(text(statement))


def write_privileges(engine: Engine) -> list[str]:
    """The ledger tables the connection's role may write (insert, update, delete or
    truncate): none for a reporting role."""
    query = text(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'metrics') AND ("
        "has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE') OR "
        "has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE')) "
        "ORDER BY 1"
    )
    with engine.connect() as conn:
        return [str(name) for name in conn.execute(query).scalars()]
