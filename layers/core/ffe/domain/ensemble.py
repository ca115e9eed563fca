"""Blending strategy scores into one action. The naive router is the baseline every model must beat."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from ffe.domain.models import Action
from ffe.domain.strategies import Strategy

NAIVE_ROUTER = "naive_router"
NAIVE_ROUTER_VERSION = "1"
META_CONTROLLER = "meta_controller"


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
    _check_threshold(entry_threshold)
    score = min(1.0, max(-1.0, statistics.fmean(scores.values())))
    detail = ", ".join(f"{name} {value:+.2f}" for name, value in scores.items())
    return _act(score, entry_threshold, f"equal-weight blend {score:+.2f} (entry ±{entry_threshold:.2f}): {detail}")


def weighted_blend(
    scores: Mapping[Strategy, float], weights: Mapping[str, float], entry_threshold: float = 0.15
) -> Blend:
    """The meta-controller's blend: ``Σ weight · score`` over the options (the flat option scores 0).

    The same entry rule as :func:`naive_router`, so the two differ only in how they weight.
    """
    _check_threshold(entry_threshold)
    if not scores or not weights or abs(sum(weights.values()) - 1.0) > 1e-3 or min(weights.values()) < 0:
        raise ValueError(f"weights must be non-negative and sum to 1, got {dict(weights)}")
    by_name = {str(name): value for name, value in scores.items()}
    score = min(1.0, max(-1.0, sum(w * by_name.get(name, 0.0) for name, w in weights.items())))
    detail = ", ".join(f"{name} {w:.2f}×{by_name.get(name, 0.0):+.2f}" for name, w in weights.items())
    return _act(score, entry_threshold, f"meta-controller blend {score:+.2f} (entry ±{entry_threshold:.2f}): {detail}")


def _act(score: float, entry_threshold: float, reason: str) -> Blend:
    if score > entry_threshold:
        action, confidence = Action.BUY, abs(score)
    elif score < -entry_threshold:
        action, confidence = Action.SELL, abs(score)
    else:
        action, confidence = Action.HOLD, 1.0 - abs(score) / entry_threshold
    return Blend(action, round(confidence, 6), score, reason)


def _check_threshold(entry_threshold: float) -> None:
    if not 0.0 < entry_threshold < 1.0:
        raise ValueError(f"entry_threshold must be in (0, 1), got {entry_threshold}")
