"""Blending strategy scores into one action. The naive router is the baseline every model must beat."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from ffe.domain.models import Action
from ffe.domain.strategies import Strategy

NAIVE_ROUTER = "naive_router"
NAIVE_ROUTER_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Blend:
    action: Action
    confidence: float
    score: float
    reason: str


def naive_router(scores: Mapping[Strategy, float], entry_threshold: float = 0.15) -> Blend:
    """Equal-weight mean of the scores; |mean| above ``entry_threshold`` trades in its direction.

    Confidence is |mean| for a trade, and for HOLD how far the mean sits inside the dead band.
    """
    if not scores:
        raise ValueError("naive_router needs at least one strategy score")
    if not 0.0 < entry_threshold < 1.0:
        raise ValueError(f"entry_threshold must be in (0, 1), got {entry_threshold}")
    score = statistics.fmean(scores.values())
    score = min(1.0, max(-1.0, score))
    detail = ", ".join(f"{name} {value:+.2f}" for name, value in scores.items())
    if score > entry_threshold:
        action, confidence = Action.BUY, abs(score)
    elif score < -entry_threshold:
        action, confidence = Action.SELL, abs(score)
    else:
        action, confidence = Action.HOLD, 1.0 - abs(score) / entry_threshold
    reason = f"equal-weight blend {score:+.2f} (entry ±{entry_threshold:.2f}): {detail}"
    return Blend(action, round(confidence, 6), score, reason)
