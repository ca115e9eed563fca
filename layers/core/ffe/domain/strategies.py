"""The three strategy signals the meta-controller later weights. Each scores in [-1, 1]:
positive favours buying, negative selling, 0 no view."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ffe.domain.models import Bar


class Strategy(StrEnum):
    TREND_FOLLOWING = "trend_following"
    MEAN_REVERSION = "mean_reversion"
    BREAKOUT = "breakout"


@dataclass(frozen=True, slots=True)
class StrategyParams:
    fast_window: int = 20
    slow_window: int = 50
    zscore_window: int = 20
    channel_window: int = 20

    @property
    def min_bars(self) -> int:
        """Bars needed for every strategy to have its full look-back (one extra for returns/channel)."""
        return max(self.slow_window, self.zscore_window, self.channel_window) + 1


def trend_following(closes: Sequence[float], fast: int, slow: int) -> float:
    """Moving-average cross: fast SMA over slow SMA, scaled by the recent volatility of returns."""
    _need(closes, slow + 1, "trend following")
    fast_ma = statistics.fmean(closes[-fast:])
    slow_ma = statistics.fmean(closes[-slow:])
    spread = (fast_ma - slow_ma) / slow_ma
    window = closes[-(slow + 1) :]
    returns = [math.log(b / a) for a, b in zip(window, window[1:], strict=False)]
    sigma = statistics.pstdev(returns)
    if sigma == 0.0:
        return float(math.copysign(1.0, spread)) if spread else 0.0
    return math.tanh(spread / (2.0 * sigma))


def mean_reversion(closes: Sequence[float], window: int) -> float:
    """Z-score of the last close against its rolling mean; stretched prices score against the move."""
    _need(closes, window, "mean reversion")
    recent = closes[-window:]
    sd = statistics.pstdev(recent)
    if sd == 0.0:
        return 0.0
    z = (closes[-1] - statistics.fmean(recent)) / sd
    return -math.tanh(z / 2.0)


def breakout(bars: Sequence[Bar], window: int) -> float:
    """Donchian channel over the ``window`` bars before the last: +1 above, -1 below, else 0."""
    _need(bars, window + 1, "breakout")
    channel = bars[-(window + 1) : -1]
    upper = max(b.high for b in channel)
    lower = min(b.low for b in channel)
    close = bars[-1].close
    if close > upper:
        return 1.0
    if close < lower:
        return -1.0
    return 0.0


def score_all(bars: Sequence[Bar], params: StrategyParams) -> dict[Strategy, float]:
    """Every strategy's score on the same series."""
    closes = [b.close for b in bars]
    return {
        Strategy.TREND_FOLLOWING: trend_following(closes, params.fast_window, params.slow_window),
        Strategy.MEAN_REVERSION: mean_reversion(closes, params.zscore_window),
        Strategy.BREAKOUT: breakout(bars, params.channel_window),
    }


def _need(series: Sequence[object], n: int, name: str) -> None:
    if len(series) < n:
        # A programming error: the staleness gate guarantees min_bars before any strategy runs.
        raise ValueError(f"{name} needs {n} bars, got {len(series)}")
