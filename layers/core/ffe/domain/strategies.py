"""The three strategy signals the meta-controller weights. Each scores in [-1, 1]:
positive favours buying, negative selling, 0 no view.

Every strategy is computed for a whole series at once (:func:`score_matrix`, row ``t`` reads bars ``..t``
only); a single decision is the last row over the last ``min_bars`` bars. Each row reduces its own window,
so a backtest over years and a Lambda over 120 bars produce the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from ffe.domain.models import BarColumnsLike, BarLike
from ffe.domain.windows import means, stds, windows


class Strategy(StrEnum):
    TREND_FOLLOWING = "trend_following"
    MEAN_REVERSION = "mean_reversion"
    BREAKOUT = "breakout"


STRATEGIES: tuple[Strategy, ...] = tuple(Strategy)


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


def trend_following_series(closes: NDArray[np.float64], fast: int, slow: int) -> NDArray[np.float64]:
    """Moving-average cross: fast SMA over slow SMA, scaled by the volatility of the slow window's returns."""
    c = np.asarray(closes, dtype=np.float64)
    out = np.full(c.size, np.nan)
    if c.size < slow + 1:
        return out
    # bar t (from ``slow``) reads the fast and slow windows ending at it and the slow window of returns into it
    fast_ma = means(windows(c[slow - fast + 1 :], fast))
    slow_ma = means(windows(c[1:], slow))
    spread = (fast_ma - slow_ma) / slow_ma
    log_c = np.log(c)
    sigma = stds(windows(np.subtract(log_c[1:], log_c[:-1]), slow))
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.tanh(spread / (2.0 * sigma))
    out[slow:] = np.where(sigma == 0.0, np.sign(spread), scaled)
    return out


def mean_reversion_series(closes: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Z-score of each close against its rolling mean; stretched prices score against the move."""
    c = np.asarray(closes, dtype=np.float64)
    out = np.full(c.size, np.nan)
    if c.size < window:
        return out
    runs = windows(c, window)
    sd = stds(runs)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (c[window - 1 :] - means(runs)) / sd
    out[window - 1 :] = np.where(sd == 0.0, 0.0, -np.tanh(z / 2.0))
    return out


def breakout_series(
    highs: NDArray[np.float64], lows: NDArray[np.float64], closes: NDArray[np.float64], window: int
) -> NDArray[np.float64]:
    """Donchian channel over the ``window`` bars before each bar: +1 above, -1 below, else 0."""
    c = np.asarray(closes, dtype=np.float64)
    out = np.full(c.size, np.nan)
    if c.size < window + 1:
        return out
    upper = np.maximum.reduce(windows(np.asarray(highs, dtype=np.float64)[:-1], window), axis=1)
    lower = np.minimum.reduce(windows(np.asarray(lows, dtype=np.float64)[:-1], window), axis=1)
    last = c[window:]
    out[window:] = np.where(last > upper, 1.0, np.where(last < lower, -1.0, 0.0))
    return out


def score_matrix(
    highs: NDArray[np.float64], lows: NDArray[np.float64], closes: NDArray[np.float64], params: StrategyParams
) -> NDArray[np.float64]:
    """Every strategy's score at every bar, columns in :data:`STRATEGIES` order; NaN during warm-up."""
    return np.column_stack(
        [
            trend_following_series(closes, params.fast_window, params.slow_window),
            mean_reversion_series(closes, params.zscore_window),
            breakout_series(highs, lows, closes, params.channel_window),
        ]
    )


def bar_arrays(bars: Sequence[BarLike]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Highs, lows and closes of ``bars`` as float arrays."""
    return (
        np.fromiter((b.high for b in bars), np.float64, len(bars)),
        np.fromiter((b.low for b in bars), np.float64, len(bars)),
        np.fromiter((b.close for b in bars), np.float64, len(bars)),
    )


def trend_following(closes: Sequence[float], fast: int, slow: int) -> float:
    """The trend-following score of the last close."""
    _need(closes, slow + 1, "trend following")
    return float(trend_following_series(np.asarray(closes[-(slow + 1) :], dtype=np.float64), fast, slow)[-1])


def mean_reversion(closes: Sequence[float], window: int) -> float:
    """The mean-reversion score of the last close."""
    _need(closes, window, "mean reversion")
    return float(mean_reversion_series(np.asarray(closes[-window:], dtype=np.float64), window)[-1])


def breakout(bars: Sequence[BarLike], window: int) -> float:
    """The breakout score of the last bar."""
    _need(bars, window + 1, "breakout")
    highs, lows, closes = bar_arrays(bars[-(window + 1) :])
    return float(breakout_series(highs, lows, closes, window)[-1])


def score_all(bars: Sequence[BarLike], params: StrategyParams) -> dict[Strategy, float]:
    """Every strategy's score on the last bar of ``bars``."""
    _need(bars, params.min_bars, "score_all")
    return _last_row(*bar_arrays(bars[-params.min_bars :]), params)


def score_columns(columns: BarColumnsLike, params: StrategyParams) -> dict[Strategy, float]:
    """:func:`score_all` of the bars ``columns`` hold, read from the price columns (the same arrays, so the same
    scores: tests/unit/domain/test_strategies.py compares the two)."""
    _need(columns.close, params.min_bars, "score_all")
    last = slice(-params.min_bars, None)
    highs, lows, closes = (np.array(c[last], np.float64) for c in (columns.high, columns.low, columns.close))
    return _last_row(highs, lows, closes, params)


def _last_row(
    highs: NDArray[np.float64], lows: NDArray[np.float64], closes: NDArray[np.float64], params: StrategyParams
) -> dict[Strategy, float]:
    row = score_matrix(highs, lows, closes, params)[-1]
    return {name: float(value) for name, value in zip(STRATEGIES, row, strict=True)}


def _need(series: Sequence[object], n: int, name: str) -> None:
    if len(series) < n:
        # A programming error: the staleness gate guarantees min_bars before any strategy runs.
        raise ValueError(f"{name} needs {n} bars, got {len(series)}")
