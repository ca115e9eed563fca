"""A market-data provider that serves exactly the bars a test gives it (implements MarketDataProvider)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.ports import FetchedSeries


class FixedProvider:
    name = "fixed"

    def __init__(self, bars: Sequence[Bar], simulated_clock: bool = True) -> None:
        self.bars = list(bars)
        self.simulated_clock = simulated_clock

    def fetch(
        self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int, asset_class: AssetClass | None = None
    ) -> FetchedSeries:
        return FetchedSeries(self.bars[-lookback:], "fixed:test", synthetic=False, simulated_clock=self.simulated_clock)


def hourly(closes: Sequence[float], end: datetime, spread: float = 0.001) -> list[Bar]:
    """Hourly bars with the given closes, the last one opening at ``end``; opens at the previous close."""
    bars = []
    for i, close in enumerate(closes):
        t = end - timedelta(hours=len(closes) - 1 - i)
        open_ = closes[i - 1] if i else close
        bars.append(Bar(t, open_, max(open_, close) * (1 + spread), min(open_, close) * (1 - spread), close, 10.0))
    return bars
