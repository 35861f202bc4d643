"""Feedback on answers: one transaction records a person's rating and, for a thumbs-down on an
answer below the top tier, the re-run it buys (a query of role ``rerun`` that the route step
sends one tier up; ``routeq.policies.rerun_tier``).

The re-run is a new query linked both ways (``queries.rerun_of`` and ``feedback.rerun_query_id``)
so the original answer, its cost and its verdicts stay as they were: the ledger keeps what
happened, and the report counts the re-run's cost apart. A query is re-run at most once; later
thumbs-downs are recorded and point at the same re-run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine, Table, insert, select

from routeq.errors import UnknownQueryError, UsageError
from routeq.ledger.models import Feedback
from routeq.ledger.repository import hops, queries, submit_query
from routeq.records import HopStatus, NewQuery, QueryRole, QueryStatus

feedback = cast(Table, Feedback.__table__)
MAX_COMMENT_CHARS = 4000


class FeedbackRefusedError(UsageError):
    """Feedback on something that is not a finished answer."""


@dataclass(frozen=True)
class FeedbackRecorded:
    feedback_id: int
    query_id: uuid.UUID
    answered_on: str | None
    rerun_id: uuid.UUID | None  # the re-run this feedback points at, if any
    rerun_created: bool  # True when this feedback created it
    # its route hop is still queued: publish it (after a publish that failed, the next feedback
    # publishes again; a duplicate message is turned away by the claim)
    publish: bool


class FeedbackStore:
    """Typed access to ``feedback``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        query_id: uuid.UUID,
        *,
        thumbs_down: bool,
        comment: str | None,
        tier_names: Sequence[str],
    ) -> FeedbackRecorded:
        """Record a rating of ``query_id``'s answer; a thumbs-down on a tier below the last of
        ``tier_names`` creates (once) a re-run of the query."""
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise FeedbackRefusedError(
                f"the comment has {len(comment)} characters; at most {MAX_COMMENT_CHARS}"
            )
        with self.engine.begin() as conn:
            original = conn.execute(
                select(queries).where(queries.c.id == query_id).with_for_update()
            ).one_or_none()
            if original is None:
                raise UnknownQueryError(f"no query with id {query_id}")
            if original.role != QueryRole.ANSWER.value:
                raise FeedbackRefusedError(
                    f"query {query_id} is a {original.role} query: feedback rates a user's "
                    "answer queries (for a re-run or a shadow, rate the query it re-ran)"
                )
            if original.status != QueryStatus.DONE.value:
                raise FeedbackRefusedError(
                    f"query {query_id} is {original.status}: only a finished answer can be rated"
                )
            rerun_id = conn.execute(
                select(queries.c.id).where(
                    queries.c.rerun_of == query_id, queries.c.role == QueryRole.RERUN.value
                )
            ).scalar_one_or_none()
            below_top = original.final_tier in tier_names[:-1]
            created = queued = False
            if rerun_id is not None:
                queued = (
                    conn.execute(
                        select(hops.c.status).where(hops.c.query_id == rerun_id, hops.c.seq == 1)
                    ).scalar_one_or_none()
                    == HopStatus.QUEUED.value
                )
            elif thumbs_down and below_top and original.text:  # "": erased (privacy none)
                rerun = NewQuery(
                    original.text,
                    original.input_tokens,
                    metadata=dict(original.metadata or {}),
                    user=original.user_id,
                    messages=original.messages,
                    params=original.params,
                    role=QueryRole.RERUN,
                    rerun_of=query_id,
                    api_key_id=original.api_key_id,
                    privacy=original.privacy,
                )
                rerun_id = submit_query(conn, rerun).query_id
                created = queued = True
            feedback_id = conn.execute(
                insert(feedback)
                .values(
                    query_id=query_id,
                    thumbs_down=thumbs_down,
                    comment=comment,
                    tier=original.final_tier,
                    rerun_query_id=rerun_id if thumbs_down else None,
                )
                .returning(feedback.c.id)
            ).scalar_one()
        return FeedbackRecorded(
            feedback_id,
            query_id,
            original.final_tier,
            rerun_id if thumbs_down else None,
            created,
            publish=thumbs_down and queued,
        )
