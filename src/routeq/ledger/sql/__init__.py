"""Named read queries: each report's SQL lives in a ``NAME.sql`` file beside this module.

The reports read the views that the migrations create (``query_journeys``, ``escalations``,
``spend_daily``, ``top_tier_counterfactual``, ``batch_document_spend``, ``batch_spend``) and the
metrics rollup (schema ``metrics``), so the definitions live in one place, the migrations, and
these files only choose and filter. Keeping them as files lets people run the same text in psql.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from sqlalchemy import TextClause, text


@cache
def source(name: str) -> str:
    """The text of ``NAME.sql``; a clear error for a name that has no file."""
    resource = files(__name__).joinpath(f"{name}.sql")
    if not resource.is_file():
        raise KeyError(f"no named query {name!r} (expected {name}.sql in {__name__})")
    return resource.read_text(encoding="utf-8")


def named(name: str) -> TextClause:
    """``NAME.sql`` as a SQLAlchemy text clause (bind parameters as ``:name``)."""
    return text(source(name))
