"""What a routing policy is: a plain object that looks at a query and picks a tier.

Policies are pure (no I/O), so they unit-test without services, and the route step never needs
to know which policy it runs. A policy that needs more than the text (an embedding, a small
model's opinion) declares *features*; the route step computes them first, recording any model
call they make on the route hop (``policies.features``), and hands them over in the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from routeq.policies.features import Feature


@dataclass(frozen=True)
class QueryView:
    """What a policy may look at. The text is here because policies need it; it never leaves the
    worker (only the decision and its reason are recorded). ``messages`` are the chat turns of
    a chat request (None for a plain text query); ``features`` the values of the features the
    policy declared, by name."""

    text: str
    token_count: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None
    task: str = "answer"  # "summarize" for batch summarization (a whole document or a piece)
    role: str = "answer"  # the query's role on the ledger (answer, document, part, ...)
    messages: Sequence[Mapping[str, str]] | None = None
    features: Mapping[str, Any] = field(default_factory=dict)
    # The user's earlier queries on the ledger, counted up to ``routing.first_queries.count``
    # (so a number at the cap means "at least that many"); None when the option is off, the
    # query has no user, or it is not an answer query: the route step asks only then.
    user_query_count: int | None = None
    # The query's id on the ledger (None outside the route step): what exploration hashes, so
    # a redelivery decides the same way (``policies.router.exploration_tier``).
    query_id: str | None = None

    def with_features(self, features: Mapping[str, Any]) -> QueryView:
        return replace(self, features=features)


@dataclass(frozen=True)
class Decision:
    """A policy's choice: the tier and why. ``policy`` and ``version`` name what decided (the
    route step fills them in from the policy when a policy leaves them empty); ``score`` is the
    policy's own number (a classifier's probability, a predicted gain); ``details`` anything
    else worth keeping on the route hop (a rule's name, the threshold in force). All of it is
    recorded on the route hop."""

    tier: str
    reason: str
    score: float | None = None
    rule: str | None = None
    policy: str | None = None
    version: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """Routing policy protocol: a name and version for the ledger, the features it needs, and
    the decision. ``version`` identifies what the policy decides with (for a trained policy a
    hash of its artifact), so two versions' outcomes can be told apart in reports."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def features(self) -> Sequence[Feature]: ...

    def decide(self, query: QueryView) -> Decision:
        """Pick a tier for ``query``."""
        ...
