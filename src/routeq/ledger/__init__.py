"""The hop ledger: tables, engine, and the repository every component goes through.

The record types (``routeq.records``) are pure; the repository and the tables load
SQLAlchemy. Names are resolved on first use, so importing the records (as the steps, hooks and
policies do) does not pull the database driver in.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routeq.ledger.db import make_engine
    from routeq.ledger.models import Base, Hop, ProviderRequest, Query
    from routeq.ledger.port import LedgerPort
    from routeq.ledger.repository import Ledger
    from routeq.records import (
        Claim,
        ClaimedHop,
        ClaimState,
        HopKind,
        HopResult,
        HopStatus,
        HopView,
        NewQuery,
        NextHop,
        QueryOutcome,
        QueryRole,
        QueryStatus,
        QueryView,
        Submitted,
        Usage,
    )

_HOMES = {
    "make_engine": "routeq.ledger.db",
    "Base": "routeq.ledger.models",
    "Hop": "routeq.ledger.models",
    "ProviderRequest": "routeq.ledger.models",
    "Query": "routeq.ledger.models",
    "Ledger": "routeq.ledger.repository",
    "LedgerPort": "routeq.ledger.port",
    **{
        name: "routeq.records"
        for name in (
            "Claim",
            "ClaimedHop",
            "ClaimState",
            "HopKind",
            "HopResult",
            "HopStatus",
            "HopView",
            "NewQuery",
            "NextHop",
            "QueryOutcome",
            "QueryRole",
            "QueryStatus",
            "QueryView",
            "Submitted",
            "Usage",
        )
    },
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'routeq.ledger' has no attribute {name!r}")
    return getattr(import_module(home), name)


__all__ = [
    "Base",
    "Claim",
    "ClaimState",
    "ClaimedHop",
    "Hop",
    "HopKind",
    "HopResult",
    "HopStatus",
    "HopView",
    "Ledger",
    "LedgerPort",
    "NewQuery",
    "NextHop",
    "ProviderRequest",
    "Query",
    "QueryOutcome",
    "QueryRole",
    "QueryStatus",
    "QueryView",
    "Submitted",
    "Usage",
    "make_engine",
]
