"""Moving along the tier ladder with the context window in mind. Pure."""

from __future__ import annotations

import uuid

from routeq.config import Settings, TierConfig
from routeq.tokens import fits_window


def fits(tier: TierConfig, input_tokens: int) -> bool:
    """Whether a prompt of ``input_tokens`` (routeq's count) leaves room for the tier's answer,
    with the tier's ``token_margin`` for a model whose tokenizer counts more than ours."""
    return fits_window(input_tokens, tier.max_output_tokens, tier.context_window, tier.token_margin)


def fit_to_context(settings: Settings, tier_name: str, input_tokens: int) -> TierConfig | None:
    """The first tier at or above ``tier_name`` whose window holds the query, or None."""
    start = settings.tier_names.index(settings.tier(tier_name).name)
    return next((t for t in settings.tiers[start:] if fits(t, input_tokens)), None)


def tier_for_escalation(settings: Settings, tier_name: str, input_tokens: int) -> TierConfig | None:
    """The next tier above ``tier_name`` that holds the query, or None at the top."""
    above = settings.next_tier(tier_name)
    return None if above is None else fit_to_context(settings, above.name, input_tokens)


def rerun_tier(settings: Settings, answered_on: str | None) -> str:
    """Where a re-run after a thumbs-down goes: the tier above the one that answered (the top
    tier when that is unknown or already the top)."""
    if answered_on is None or answered_on not in settings.tier_names:
        return settings.top_tier.name
    above = settings.next_tier(answered_on)
    return settings.top_tier.name if above is None else above.name


def shadow_tier(settings: Settings, answered_on: str | None) -> str | None:
    """Where a shadow of an answer from ``answered_on`` runs (``shadow.tier``: the next tier up,
    the top tier, or a named one), or None when that tier is not above ``answered_on``: a shadow
    on the same tier or a cheaper one measures nothing routing could have bought."""
    names = settings.tier_names
    if answered_on is None or answered_on not in names:
        return None
    wanted = settings.shadow.tier
    if wanted == "next":
        above = settings.next_tier(answered_on)
        return None if above is None else above.name
    target = settings.top_tier.name if wanted == "top" else wanted
    return target if names.index(target) > names.index(answered_on) else None


def shadow_sampled(query_id: uuid.UUID, share: float) -> bool:
    """Whether the query is in the shadow sample: decided by its id, so the same query is always
    in or out (a re-delivered step decides the same) and the sample is uniform over traffic."""
    return int(query_id.hex[:8], 16) < share * 0x1_0000_0000
