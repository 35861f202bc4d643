"""Engines. One engine per process; prefork children must not reuse the parent's connections."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """An engine with pre-ping, so a Postgres restart costs one reconnect, not a failed task."""
    return create_engine(
        database_url,
        pool_pre_ping=True,
        # SQL errors would otherwise quote bound parameters (prompts, answers) into logs.
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        future=True,
    )
