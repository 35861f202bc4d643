"""The hop ledger: tables, engine, and the repository every component goes through."""

from routeq.ledger.db import make_engine
from routeq.ledger.models import Base, Hop, HopKind, HopStatus, ProviderRequest, Query, QueryStatus
from routeq.ledger.repository import (
    Claim,
    ClaimedHop,
    HopView,
    Ledger,
    NewQuery,
    NextHop,
    QueryOutcome,
    QueryView,
    Submitted,
)

__all__ = [
    "Base",
    "Claim",
    "ClaimedHop",
    "Hop",
    "HopKind",
    "HopStatus",
    "HopView",
    "Ledger",
    "NewQuery",
    "NextHop",
    "ProviderRequest",
    "Query",
    "QueryOutcome",
    "QueryStatus",
    "QueryView",
    "Submitted",
    "make_engine",
]
