"""The staleness gate (DESIGN.md §2): fail closed, stale input never reaches a model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ffe.domain.models import Bar, Timeframe

# Maximum age of the last bar's *close*, by timeframe. Daily bars have no age check.
THRESHOLDS: dict[Timeframe, timedelta | None] = {
    Timeframe.M1: timedelta(minutes=15),
    Timeframe.M5: timedelta(minutes=15),
    Timeframe.M15: timedelta(minutes=30),
    Timeframe.M30: timedelta(minutes=60),
    Timeframe.H1: timedelta(minutes=120),
    Timeframe.H4: timedelta(minutes=120),
    Timeframe.D1: None,
}


@dataclass(frozen=True, slots=True)
class StalenessVerdict:
    stale: bool
    reason: str
    bar_count: int
    last_bar_time: datetime | None
    age_seconds: float | None
    threshold_seconds: int | None


def assess_staleness(bars: Sequence[Bar], timeframe: Timeframe, now: datetime, min_bars: int) -> StalenessVerdict:
    """Judge whether ``bars`` are fresh enough to decide on at ``now`` (the injected clock).

    The age is measured from the last bar's close (open time + timeframe). An empty series, or one
    shorter than ``min_bars``, is stale on every timeframe, daily included.
    """
    threshold = THRESHOLDS[timeframe]
    threshold_s = None if threshold is None else int(threshold.total_seconds())
    if not bars:
        return StalenessVerdict(True, "no bars returned by the provider", 0, None, None, threshold_s)

    last = bars[-1]
    age = max(0.0, (now - (last.time + timeframe.duration)).total_seconds())
    if len(bars) < min_bars:
        stale, reason = True, f"only {len(bars)} bars, at least {min_bars} needed"
    elif threshold_s is not None and age > threshold_s:
        stale = True
        reason = f"last bar closed {human_duration(age)} ago, limit for {timeframe} is {human_duration(threshold_s)}"
    else:
        limit = "no age limit for daily bars" if threshold_s is None else f"limit {human_duration(threshold_s)}"
        stale, reason = False, f"last bar closed {human_duration(age)} ago ({limit})"
    return StalenessVerdict(stale, reason, len(bars), last.time, age, threshold_s)


def human_duration(seconds: float) -> str:
    """A short human reading of a duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min" if minutes else f"{int(seconds)} s"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"
