"""Market features the regime detector and the meta-controller read, computed from closes alone.

Row ``t`` of :func:`feature_matrix` uses closes ``0..t`` only (no look-ahead), and is the same number
whether it is computed over a whole history (backtests, training) or over the last bars a Lambda fetched:
every feature looks back a fixed number of bars, so ``feature_matrix(c)[t] == feature_matrix(c[t+1-n:t+1])[-1]``
for any ``n >= FeatureParams.warmup``.

The three features (``w`` = ``window`` bars, ``σ_w`` = population std of the last ``w`` one-bar log returns):

* ``momentum``: ``log(c_t / c_{t-w}) / (σ_w · √w)``, the window's log return in units of its own noise;
* ``volatility``: ``log(σ_w / σ_{long})``, short realized volatility against ``long_window`` bars of it
  (scale-free, so one fit serves BTC and EURUSD alike);
* ``trend_strength``: Kaufman's efficiency ratio ``|c_t - c_{t-w}| / Σ|c_i - c_{i-1}|`` over the window,
  1 for a straight line and near 0 for a chop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ffe.domain.windows import stds, windows

FEATURE_NAMES: tuple[str, ...] = ("momentum", "volatility", "trend_strength")
_TINY = 1e-12  # floors a zero volatility (a flat series) so the logs stay finite


@dataclass(frozen=True, slots=True)
class FeatureParams:
    window: int = 20
    long_window: int = 60

    def __post_init__(self) -> None:
        if not 2 <= self.window < self.long_window:
            raise ValueError(f"need 2 <= window < long_window, got {self.window}, {self.long_window}")

    @property
    def warmup(self) -> int:
        """Closes needed before the first complete feature row."""
        return self.long_window + 1


def feature_matrix(closes: NDArray[np.float64], params: FeatureParams) -> NDArray[np.float64]:
    """One feature row per close; rows before ``params.warmup - 1`` are NaN.

    Raises:
        ValueError: a non-positive or non-finite close (the series validator rejects those earlier).
    """
    c = np.asarray(closes, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError("closes must be one-dimensional")
    if c.size and (not np.isfinite(c).all() or (c <= 0).any()):
        raise ValueError("closes must be finite and positive")
    out = np.full((c.size, len(FEATURE_NAMES)), np.nan)
    if c.size < params.warmup:
        return out
    w, n = params.window, params.long_window
    first = params.warmup - 1  # the first close with a complete row
    log_c = np.log(c)
    r = np.subtract(log_c[1:], log_c[:-1])  # np.diff: r[i] is the log return into close i+1
    # Each row t reads the w (and n) returns up to its last, r[t-1]: the windows starting at r[t-w] (and r[t-n]).
    sw = np.maximum(stds(windows(r[first - w :], w)), _TINY)
    sl = np.maximum(stds(windows(r[first - n :], n)), _TINY)
    now, then = c[first:], c[first - w : c.size - w]
    drift = np.log(now / then)
    out[first:, 0] = drift / (sw * np.sqrt(w))
    out[first:, 1] = np.log(sw / sl)
    steps = np.abs(np.subtract(c[1:], c[:-1]))
    travelled = np.add.reduce(windows(steps[first - w :], w), axis=1)  # Σ|Δc| over the window's w steps
    straight = np.abs(now - then)
    out[first:, 2] = np.where(travelled > 0, straight / np.where(travelled > 0, travelled, 1.0), 0.0)
    return out


def latest_features(closes: NDArray[np.float64], params: FeatureParams) -> NDArray[np.float64]:
    """The feature row of the last close (NaN if the series is shorter than ``params.warmup``)."""
    c = np.asarray(closes, dtype=np.float64)
    return feature_matrix(c[-params.warmup :], params)[-1]
