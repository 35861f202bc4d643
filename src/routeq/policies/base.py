"""What a routing policy is: a plain object with one method, query in, tier decision out.

Policies are pure (no I/O), so they unit-test without services, and the route task never needs to
know which policy it runs. Classifier and learned policies implement the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class QueryView:
    """What a policy may look at. The text is here because policies need it; it never leaves the
    worker (only the decision and reason are recorded)."""

    text: str
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    task: str = "answer"  # "summarize" for batch summarization (a whole document or a piece)


@dataclass(frozen=True)
class Decision:
    """A policy's choice: the tier, why, an optional score (e.g. a classifier's probability), and
    the rule that fired when the policy is rule-based."""

    tier: str
    reason: str
    score: float | None = None
    rule: str | None = None


class Policy(Protocol):
    """Routing policy protocol."""

    name: str

    def decide(self, query: QueryView) -> Decision:
        """Pick a tier for ``query``."""
        ...
