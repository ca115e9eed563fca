"""The risk gate's return statistics for every bar of a series at once, bit for bit ``ffe.domain.risk.return_stats``.

GateRisk computes σ and the VaR loss quantile of the last ``lookback_bars - 1`` log returns once per decision;
the backtester needs them at every gated bar of every strategy, where ``return_stats`` (two ``math.fsum``
and a sort per call) was most of a backtest's time under cProfile (issue 16). Here every full window is one row of a
sliding-window view: the means, the deviations and their squares are numpy's elementwise IEEE operations (the
same roundings as Python's floats), the k-th smallest return is ``np.partition`` (no arithmetic), and the two sums
are ``correctly_rounded_row_sums``: what ``math.fsum`` returns for each row, without a Python loop over rows.
The backtester prepares the bars it will gate; windows shorter than a full one (the first bars of a series), and any
bar not prepared, go through ``return_stats`` itself, on demand.
tests/unit/backtest/test_window_stats.py checks every window of two bundled series against ``return_stats``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from ffe.domain.risk import ReturnStats, return_stats, var_index

_U = 2.0**-53  # the unit roundoff of float64


def correctly_rounded_row_sums(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each row's sum rounded once, to nearest even: ``math.fsum(row)`` for every row, bit for bit.

    Knuth's TwoSum runs down the columns, keeping every addition's rounding error exactly; the errors are then
    summed plainly, which is off by at most ``4 n² u² Σ|x|`` (a few 1e-28 of the row's magnitude for 119 columns).
    The one final rounding is therefore the correct one unless the exact sum lies within that bound of halfway
    between two floats, or is exactly halfway (common when a row's numbers share an exponent), or is not finite;
    those rows go to ``math.fsum`` itself.
    """
    rows, n = m.shape
    if n == 0:
        return np.zeros(rows)
    columns = np.ascontiguousarray(m.T)
    total = columns[0].copy()
    errors = np.zeros(rows)
    magnitude = np.abs(columns[0])
    added, back, lost = np.empty(rows), np.empty(rows), np.empty(rows)  # each step's arrays, written in place
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite row ends as NaN, then goes to math.fsum
        for x in columns[1:]:
            # added = total + x; back = added - total; errors += (total - (added - back)) + (x - back)
            np.add(total, x, out=added)
            np.subtract(added, total, out=back)
            np.subtract(added, back, out=lost)
            np.subtract(total, lost, out=lost)
            np.subtract(x, back, out=back)
            np.add(lost, back, out=lost)
            np.add(errors, lost, out=errors)
            np.add(magnitude, np.abs(x, out=back), out=magnitude)
            total, added = added, total
        out = total + errors
        back = out - total
        residual = (total - (out - back)) + (errors - back)  # total + errors == out + residual, exactly
        bound = 4.0 * n * n * _U * _U * magnitude
        gap = np.minimum(np.nextafter(out, np.inf) - out, out - np.nextafter(out, -np.inf))
        unsure = ~(np.abs(residual) + bound < 0.4999 * gap)
    for i in np.flatnonzero(unsure).tolist():
        out[i] = math.fsum(m[i].tolist())
    return out


class WindowStats:
    """``at(t)`` is ``return_stats(log_returns[max(0, t - lookback_bars + 1):t], var_confidence)``: the window
    GateRisk measures at bar ``t``. ``prepare(bars)`` computes the full windows of the bars a backtest will gate, in
    one pass (each row's numbers depend on that row alone, so a batch gives the same bits whatever else it holds);
    any other bar's goes through ``return_stats`` on demand."""

    def __init__(self, log_returns: Sequence[float], lookback_bars: int, var_confidence: float) -> None:
        self._returns = log_returns
        self._lookback = lookback_bars
        self._confidence = var_confidence
        self._cache: dict[int, ReturnStats | None] = {}
        self._width = width = lookback_bars - 1  # bar t reads returns t - width .. t - 1
        values = np.asarray(log_returns, dtype=np.float64)
        self._full = width >= 20 and values.size >= width  # otherwise every usable window is computed on demand
        if self._full:
            finite = np.isfinite(values)
            self._windows = sliding_window_view(np.where(finite, values, 0.0), width)
            self._clean: NDArray[np.bool_] = np.asarray(sliding_window_view(finite, width).all(axis=1))

    def prepare(self, bars: NDArray[np.int_]) -> None:
        """Compute the statistics of the bars ``bars`` (indices ``t``) whose window is full, at once."""
        if not self._full:
            return
        last = self._windows.shape[0] - 1 + self._width
        wanted = [t for t in bars.tolist() if self._width <= t <= last and t not in self._cache]
        if not wanted:
            return
        rows = np.asarray(wanted) - self._width
        windows = self._windows[rows]
        mean = correctly_rounded_row_sums(windows) / self._width
        deviations = windows - mean[:, None]
        sigma = np.sqrt(correctly_rounded_row_sums(deviations * deviations) / self._width)
        k = var_index(self._width, self._confidence)
        worst = np.partition(windows, k, axis=1)[:, k]
        usable = (self._clean[rows] & (sigma != 0) & ~np.isnan(sigma)).tolist()  # otherwise return_stats gives None
        for t, ok, s, w in zip(wanted, usable, sigma.tolist(), worst.tolist(), strict=True):
            self._cache[t] = (s, Decimal(max(-w, 1e-12))) if ok else None

    def at(self, t: int) -> ReturnStats | None:
        if t in self._cache:
            return self._cache[t]
        stats = return_stats(self._returns[max(0, t - self._lookback + 1) : t], self._confidence)
        self._cache[t] = stats
        return stats
