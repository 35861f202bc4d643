"""The feature stage: what a policy needs computed before it can decide.

A feature has a name and computes one value from the query view. It may call a model (a small
classifier tier, say) through ``ModelCalls``, which the route step implements by recording each
call on the route hop like any other call, with its tokens and cost. Features are pure
otherwise, so a policy and its features unit-test with a fake ``ModelCalls``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from routeq.config import ModelEndpoint
    from routeq.policies.base import QueryView


class ModelCalls(Protocol):
    """How a feature calls a model: the route step records the call on the route hop."""

    def complete(
        self, endpoint: ModelEndpoint, messages: list[dict[str, str]], max_tokens: int
    ) -> str:
        """The model's reply text. Raises ``routeq.errors.ProviderError`` when it fails."""
        ...


class Feature(Protocol):
    name: str

    def compute(self, query: QueryView, calls: ModelCalls) -> Any:
        """The feature's value for ``query``."""
        ...


@dataclass(frozen=True)
class TokenCount:
    """The query's token count (already on the view; here so a policy can name it)."""

    name: str = "tokens"

    def compute(self, query: QueryView, calls: ModelCalls) -> int:
        return query.token_count


@dataclass(frozen=True)
class ModelReply:
    """A model's reply to a prompt built from the query: a few-shot classifier, say. The
    prompt template gets ``{text}``; the reply is returned stripped."""

    name: str
    endpoint: ModelEndpoint
    prompt: str
    max_tokens: int = 16

    def compute(self, query: QueryView, calls: ModelCalls) -> str:
        messages = [{"role": "user", "content": self.prompt.replace("{text}", query.text)}]
        return calls.complete(self.endpoint, messages, self.max_tokens).strip()


def compute_features(
    features: Sequence[Feature], query: QueryView, calls: ModelCalls
) -> Mapping[str, Any]:
    """Every declared feature's value, by name, in declaration order."""
    return {feature.name: feature.compute(query, calls) for feature in features}
