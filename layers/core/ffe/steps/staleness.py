"""CheckStaleness: the single freshness gate in front of every model."""

from collections.abc import Callable
from datetime import datetime

from ffe.contracts import CheckStalenessResult, MarketData
from ffe.domain.staleness import assess_staleness
from ffe.domain.strategies import StrategyParams


def check_staleness(data: MarketData, clock: Callable[[], datetime], params: StrategyParams) -> CheckStalenessResult:
    """Judge ``data`` against the wall clock, or against ``as_of`` when the data is replayed history."""
    now = data.as_of if data.source.simulated_clock else clock()
    verdict = assess_staleness(data.domain_bars(), data.timeframe, now, min_bars=params.min_bars)
    return CheckStalenessResult(
        stale=verdict.stale,
        reason=verdict.reason,
        bar_count=verdict.bar_count,
        last_bar_time=verdict.last_bar_time,
        age_seconds=verdict.age_seconds,
        threshold_seconds=verdict.threshold_seconds,
        checked_at=now,
    )
