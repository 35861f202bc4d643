"""Engines. One engine per process; prefork children must not reuse the parent's connections."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError


def make_engine(
    database_url: str,
    *,
    pool_size: int = 5,
    pre_ping: bool = True,
    ping_after_idle_s: float | None = None,
) -> Engine:
    """An engine. ``pre_ping`` (a round trip at every checkout) makes a Postgres restart cost
    one reconnect rather than a failed statement: right for producers and tools, whose failure
    is a person's. Workers use ``ping_after_idle_s`` instead: a connection is pinged only when
    it sat unused that long (a model call's wait), which is when a restart can have broken it
    unseen, and a step's back-to-back statements go without."""
    engine = create_engine(
        database_url,
        pool_pre_ping=pre_ping,
        # SQL errors would otherwise quote bound parameters (prompts, answers) into logs.
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        future=True,
    )
    if ping_after_idle_s is not None and not pre_ping:
        _ping_after_idle(engine, ping_after_idle_s)
    return engine


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out a fresh one.
            raise DisconnectionError() from error
