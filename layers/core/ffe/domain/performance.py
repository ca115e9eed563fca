"""Performance figures for a strategy's bar-by-bar record: the yardsticks of training and backtests.

All take numpy arrays aligned on bars. Returns are simple per-bar returns of the strategy's equity.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ffe.domain.models import AssetClass, Timeframe

PERIODS_PER_YEAR = {"1h_24x7": 24 * 365, "1h_fx": 24 * 260, "1h_equity": 7 * 252, "1d_24x7": 365, "1d": 252}
_EQUITY_SESSION_HOURS = 6.5  # NYSE regular session; an hourly equity day has 7 bars (the last one partial)


def periods_per_year(asset_class: AssetClass, timeframe: Timeframe) -> float:
    """Bars per year for annualizing: crypto trades 365 days around the clock, FX about 260 days, equities 252
    sessions."""
    hours = timeframe.duration.total_seconds() / 3600.0
    if asset_class is AssetClass.EQUITY:
        return 252.0 if timeframe.is_daily else 252.0 * math.ceil(_EQUITY_SESSION_HOURS / hours)
    days = 365.0 if asset_class is AssetClass.CRYPTO else 260.0
    return days * 24.0 / hours


def sharpe(returns: NDArray[np.float64], periods_per_year: float) -> float:
    """Annualized mean over standard deviation of per-bar returns (0 when there is no variation)."""
    r = _finite(returns)
    sd = float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    return float(np.mean(r) / sd * math.sqrt(periods_per_year)) if sd > 0 else 0.0


def sortino(returns: NDArray[np.float64], periods_per_year: float) -> float:
    """Annualized mean over downside deviation (root mean square of the negative returns)."""
    r = _finite(returns)
    if r.size == 0:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return float(np.mean(r) / downside * math.sqrt(periods_per_year)) if downside > 0 else 0.0


def max_drawdown(equity: NDArray[np.float64]) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.25 = 25 %)."""
    e = _finite(equity)
    if e.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(e)
    return float(np.max((peaks - e) / peaks))


def drawdown_curve(equity: NDArray[np.float64]) -> NDArray[np.float64]:
    """Drawdown from the running peak at every bar (non-positive fractions)."""
    e = np.asarray(equity, dtype=np.float64)
    peaks = np.maximum.accumulate(e)
    out: NDArray[np.float64] = e / peaks - 1.0
    return out


def turnover(positions: NDArray[np.float64]) -> float:
    """Mean absolute change in exposure per bar (1.0 = the whole book traded every bar)."""
    p = np.nan_to_num(np.asarray(positions, dtype=np.float64))
    return float(np.mean(np.abs(np.diff(p, prepend=0.0)))) if p.size else 0.0


def churn_rate(positions: NDArray[np.float64]) -> float:
    """Share of bars on which the position's direction changes: an entry, an exit or a reversal.

    A whipsawing strategy enters and leaves on consecutive bars; a steady one changes direction rarely.
    """
    p = np.sign(np.nan_to_num(np.asarray(positions, dtype=np.float64)))
    if p.size < 2:
        return 0.0
    return float(np.mean(p[1:] != p[:-1]))


def disruption(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Total-variation distance between consecutive weight vectors: 0 unchanged, 1 a complete switch."""
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros(w.shape[0])
    if w.shape[0] > 1:
        out[1:] = 0.5 * np.nansum(np.abs(np.diff(w, axis=0)), axis=1)
    return out


def max_disruption(weights: NDArray[np.float64], regimes: NDArray[np.int_] | list[str]) -> float:
    """The largest re-weighting on a bar where the dominant regime changed (0 when it never changes)."""
    labels = np.asarray(regimes)
    if labels.size < 2:
        return 0.0
    changed = np.zeros(labels.size, dtype=bool)
    changed[1:] = labels[1:] != labels[:-1]
    d = disruption(weights)
    return float(np.max(d[changed])) if changed.any() else 0.0


def _finite(x: NDArray[np.float64]) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    return a[np.isfinite(a)]
