"""Engines. One engine per process; prefork children must not reuse the parent's connections."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine


def make_engine(database_url: str, *, pool_size: int = 5, pre_ping: bool = True) -> Engine:
    """An engine. ``pre_ping`` (a round trip per checkout) makes a Postgres restart cost one
    reconnect rather than a failed statement: right for producers and tools, whose failure
    is the user's; workers turn it off, since a failed step is retried anyway."""
    return create_engine(
        database_url,
        pool_pre_ping=pre_ping,
        # SQL errors would otherwise quote bound parameters (prompts, answers) into logs.
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        future=True,
    )
