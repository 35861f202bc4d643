"""Many rows in one INSERT: each column sent as one array, the rows rebuilt with ``unnest``.

A multi-row ``VALUES`` list (SQLAlchemy's batched executemany) sends one placeholder per value,
and psycopg parses every statement of 1,000 rows x 18 columns anew: for a submission of
10,000 queries that parsing cost more than the database did. One array per column is one
placeholder per column, whatever the number of rows, and one statement. docs/performance.md
has the measurements.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, String, Table, TextClause, text
from sqlalchemy.dialects import postgresql


@functools.cache
def _pg_type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def _array_type(table: Table, column: str) -> str:
    """The element type its array travels as: JSON as text (cast back row by row), a string
    as unbounded text, so that the INSERT's own assignment to ``VARCHAR(n)`` refuses a value
    too long (an explicit cast to ``VARCHAR(n)`` would cut it without a word)."""
    column_type = table.c[column].type
    if isinstance(column_type, JSON | String):
        return "text"
    return _pg_type(table, column)


def unnest_insert(
    table: Table,
    columns: Sequence[str],
    *,
    on_conflict: str = "",
    returning: str = "",
) -> TextClause:
    """``INSERT INTO table (columns) SELECT ... FROM unnest(:columns...)``, with the given
    ``ON CONFLICT`` and ``RETURNING`` clauses. JSON columns travel as text and are cast back
    row by row; ``unnest_params`` builds the parameters."""
    arrays, selected = [], []
    for index, name in enumerate(columns):
        arrays.append(f"CAST(:c{index} AS {_array_type(table, name)}[])")
        is_json = isinstance(table.c[name].type, JSON)
        selected.append(f"CAST(c{index} AS {_pg_type(table, name)})" if is_json else f"c{index}")
    aliases = ", ".join(f"c{index}" for index in range(len(columns)))
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS rows ({aliases})"
    )
    if on_conflict:
        sql += f" ON CONFLICT {on_conflict}"
    if returning:
        sql += f" RETURNING {returning}"
    return text(sql)


def unnest_params(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> dict[str, list[Any]]:
    """One list per column of ``rows``. A JSON column's values are serialised here, ``None``
    as JSON ``null``, as SQLAlchemy stores them through the ORM's JSON type."""
    params: dict[str, list[Any]] = {}
    for index, name in enumerate(columns):
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [json.dumps(value) for value in values]
        params[f"c{index}"] = values
    return params
