"""The walk-forward report's statistics: point figures, block-bootstrap intervals and multiple-testing-aware Sharpe.

Returns are simple per-bar returns (as in ``ffe.domain.performance``). ``sharpe``, ``sortino`` and
``max_drawdown`` are the backtester's own definitions (``ffe.domain.performance``, used by
``ffe.backtest.engine.Metrics``), applied here to a return series: the equity is compounded from 1.0.
Numpy and the standard library only (``statistics.NormalDist`` for the normal CDF and its inverse).
See docs/evaluation.md, "The statistics".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ffe.domain import performance

_NORMAL = statistics.NormalDist()
_EULER_GAMMA = 0.5772156649015329  # Euler-Mascheroni constant, in the expected maximum of N normal draws

Statistic = Callable[[NDArray[np.float64]], float]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval of confidence ``level`` (0.95 = 95 %)."""

    low: float
    estimate: float
    high: float
    level: float


def sharpe(returns: ArrayLike, periods_per_year: float) -> float:
    """Annualised mean over sample standard deviation; 0.0 when the standard deviation is 0.

    The backtester's definition: ``ffe.domain.performance.sharpe`` (non-finite returns are dropped).
    """
    return performance.sharpe(_array(returns), periods_per_year)


def sortino(returns: ArrayLike, periods_per_year: float) -> float:
    """Annualised mean over downside deviation; the backtester's ``ffe.domain.performance.sortino``."""
    return performance.sortino(_array(returns), periods_per_year)


def max_drawdown(returns: ArrayLike) -> float:
    """Largest fall of the compounded equity from its running peak, as a fraction of that peak.

    Equity is ``cumprod(1 + returns)`` started at 1.0, and the figure is the backtester's
    (``ffe.domain.performance.max_drawdown``, as ``ffe.backtest.engine`` and ``ffe.training.meta_env`` call it):
    a POSITIVE fraction (0.25 = a 25 % fall) or 0.0, so the report's column matches ``Metrics.max_drawdown``.
    """
    return performance.max_drawdown(_equity(_array(returns)))


def total_return(returns: ArrayLike) -> float:
    """Compounded return over the series: ``prod(1 + r) - 1`` (``Metrics.total_return``: final over initial
    equity, less one); 0.0 for an empty series."""
    equity = _equity(_array(returns))
    return float(equity[-1] - 1.0)


def default_block(n: int) -> int:
    """Block length for a bootstrap of ``n`` dependent observations: ``round(n ** (1/3))``, at least 1, at most n.

    ``n^(1/3)`` is the order of the mean-squared-error-optimal block length of the moving- and circular-block
    bootstraps for estimating a statistic's variance or bias: Hall, Horowitz & Jing (1995), "On blocking rules for
    the bootstrap with dependent data", Biometrika 82(3), 561-574; also Lahiri (2003), "Resampling Methods for
    Dependent Data", ch. 7. The constant is taken as 1.
    """
    if n < 1:
        raise ValueError(f"a block needs at least one observation, got n={n}")
    return max(1, min(n, round(n ** (1.0 / 3.0))))


def block_bootstrap_ci(
    returns: ArrayLike,
    statistic: Statistic,
    *,
    block: int | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic`` by the circular block bootstrap of a 1-D return series.

    Circular block bootstrap (Politis & Romano 1992, "A circular block-resampling procedure for stationary data"):
    each resample is ``ceil(n / block)`` blocks of ``block`` consecutive returns, starts drawn uniformly, wrapping
    from the end of the series to its start, cut to length ``n``. Every return is equally likely in every position
    (unlike the moving-block bootstrap, which under-samples the ends), and blocks keep the short-range
    autocorrelation and volatility clustering that an i.i.d. bootstrap would destroy. ``block`` defaults to
    :func:`default_block`. ``estimate`` is ``statistic(returns)`` on the series itself; ``low``/``high`` are the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the ``n_boot`` resampled statistics.
    Deterministic given ``seed`` (numpy's ``default_rng``).
    """
    r = _series(returns)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    draws = np.fromiter(
        (statistic(r[idx]) for idx in _resamples(r.size, block, n_boot, seed)), dtype=np.float64, count=n_boot
    )
    low, high = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(low=float(low), estimate=float(statistic(r)), high=float(high), level=level)


def prob_outperforms(
    a: ArrayLike,
    b: ArrayLike,
    periods_per_year: float,
    *,
    block: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> float:
    """Bootstrap probability that the Sharpe ratio of ``a`` exceeds that of ``b``.

    Paired circular block bootstrap: ``a`` and ``b`` are aligned in time (same bars), so each resample takes the
    SAME indices from both, keeping their correlation. A tie (equal Sharpe in a resample, as for identical series)
    counts one half, so identical series give exactly 0.5. ``block`` defaults to :func:`default_block`.
    """
    x, y = _series(a), _series(b)
    if x.size != y.size:
        raise ValueError(f"paired series must be aligned: {x.size} returns against {y.size}")
    score = 0.0
    for idx in _resamples(x.size, block, n_boot, seed):
        sa, sb = sharpe(x[idx], periods_per_year), sharpe(y[idx], periods_per_year)
        score += 1.0 if sa > sb else 0.5 if sa == sb else 0.0
    return score / n_boot


def paired_metric_differences(
    a: ArrayLike,
    b: ArrayLike,
    metric: str,
    periods_per_year: float,
    *,
    block: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> NDArray[np.float64]:
    """``n_boot`` bootstrap draws of ``metric(a) - metric(b)`` (``sharpe``, ``sortino`` or ``total_return``) by
    the paired circular block bootstrap.

    As in :func:`prob_outperforms`: ``a`` and ``b`` are aligned on the same bars and every resample takes the SAME
    bars from both (:func:`block_bootstrap_ci`'s resamples, ``block`` defaulting to :func:`default_block`), so
    identical series give all zeros. Deterministic given ``seed``; draws of several series made with different
    seeds are independent resamples of each (``ffe.evaluation.gate`` averages them over series). No resample is
    materialised: each metric needs only sums over the resampled bars (of r, r², min(r, 0)², log(1 + r)), and a
    resample is a set of circular blocks, so each sum is a sum of block sums read off prefix sums; the draws are
    a plain loop's over the same resamples up to float rounding (tested), at a fraction of the cost (the promotion
    gate runs it, in the API's Lambda too: bench/bench_promotion_gate.py). ``a`` and ``b`` must be finite.
    """
    x, y = _series(a), _series(b)
    if x.size != y.size:
        raise ValueError(f"paired series must be aligned: {x.size} returns against {y.size}")
    return metric_draws(x, metric, periods_per_year, block=block, n_boot=n_boot, seed=seed) - metric_draws(
        y, metric, periods_per_year, block=block, n_boot=n_boot, seed=seed
    )


def metric_draws(
    a: Sequence[float] | NDArray[np.float64],
    metric: str,
    periods_per_year: float,
    *,
    block: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> NDArray[np.float64]:
    """``metric(a)`` on each of the ``n_boot`` resamples :func:`paired_metric_differences` takes: the resamples
    depend only on the length, ``block``, ``n_boot`` and ``seed``, so two series of one length drawn with the same
    arguments are paired bar for bar (``ffe.evaluation.gate`` averages several seeds' paths this way)."""
    if metric not in _ROW_METRICS:
        raise ValueError(f"metric must be one of {', '.join(_ROW_METRICS)}, got {metric!r}")
    x = _series(a)
    if not np.all(np.isfinite(x)):
        raise ValueError("metric_draws needs finite returns")
    starts, size = _block_starts(x.size, block, n_boot, seed)
    body, last = starts[:, :-1], starts[:, -1]
    cut = x.size - body.shape[1] * size  # the last block is cut to n bars in all
    every = np.arange(x.size)

    def total(values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per resample, the sum of ``values`` over its bars: the sums of the windows starting at each bar (full
        blocks, and the cut last one) read off prefix sums, then gathered by the resample's block starts."""
        prefix = np.concatenate([[0.0], np.cumsum(np.concatenate([values, values[:size]]))])
        window, window_cut = prefix[every + size] - prefix[every], prefix[every + cut] - prefix[every]
        return window[body].sum(axis=1) + window_cut[last]

    return _ROW_METRICS[metric](total, x, periods_per_year)


Sums = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def _sharpe_sums(total: Sums, r: NDArray[np.float64], periods_per_year: float) -> NDArray[np.float64]:
    n = r.size
    mean = total(r) / n
    var = np.maximum(total(r * r) - n * mean * mean, 0.0) / (n - 1) if n > 1 else np.zeros_like(mean)
    sd = np.sqrt(var)
    return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0) * math.sqrt(periods_per_year), 0.0)


def _sortino_sums(total: Sums, r: NDArray[np.float64], periods_per_year: float) -> NDArray[np.float64]:
    downside = np.sqrt(total(np.minimum(r, 0.0) ** 2) / r.size)
    mean = total(r) / r.size
    return np.where(downside > 0, mean / np.where(downside > 0, downside, 1.0) * math.sqrt(periods_per_year), 0.0)


def _total_return_sums(total: Sums, r: NDArray[np.float64], _periods_per_year: float) -> NDArray[np.float64]:
    """prod(1 + r) - 1 as exp(sum of log(1 + r)) - 1; a resample holding a bar that lost everything (r <= -1,
    whose log is -inf) is -1, counted apart so that it does not poison the prefix sums of every other window."""
    ruined = r <= -1.0
    growth = np.expm1(total(np.log1p(np.where(ruined, 0.0, r))))
    return growth if not ruined.any() else np.where(total(ruined.astype(np.float64)) > 0, -1.0, growth)


_ROW_METRICS: dict[str, Callable[[Sums, NDArray[np.float64], float], NDArray[np.float64]]] = {
    "sharpe": _sharpe_sums,
    "sortino": _sortino_sums,
    "total_return": _total_return_sums,
}


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """Probabilistic Sharpe ratio: the probability that the true Sharpe exceeds ``sr_benchmark``.

    Bailey & Lopez de Prado (2012), "The Sharpe ratio efficient frontier", J. of Risk 15(2), eq. for PSR::

        PSR = Phi( (SR - SR_bench) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2) )

    ``sr`` and ``sr_benchmark`` are PER-PERIOD (per-bar) Sharpe ratios, NOT annualised: divide an annualised
    figure by ``sqrt(periods_per_year)`` first. ``skew`` is the third standardised moment and ``kurtosis`` the
    fourth, the plain (Pearson) kurtosis, 3 for normal returns (not the excess kurtosis). ``n_obs`` is the number
    of returns.
    """
    if n_obs < 2:
        raise ValueError(f"the probabilistic Sharpe ratio needs at least 2 observations, got {n_obs}")
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not variance > 0.0:
        raise ValueError(f"skew {skew} and kurtosis {kurtosis} give a non-positive Sharpe variance at SR={sr}")
    return _NORMAL.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(variance))


def expected_max_sharpe(trial_sharpes: Sequence[float]) -> float:
    """Expected maximum of N per-period Sharpe ratios under the null of no skill (true Sharpe 0).

    Bailey & Lopez de Prado (2014), "The deflated Sharpe ratio", J. of Portfolio Management 40(5), eq. 2::

        SR0 = sqrt(V[SR_n]) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))

    with ``V`` the sample variance of the trials' Sharpe ratios, Phi the standard normal CDF and g the
    Euler-Mascheroni constant. Fewer than two trials give 0.0 (one trial has no selection to deflate, and no
    variance).
    """
    n = len(trial_sharpes)
    if n < 2:
        return 0.0
    spread = math.sqrt(statistics.variance(float(s) for s in trial_sharpes))
    return spread * (
        (1.0 - _EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + _EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    )


def deflated_sharpe(sr: float, n_obs: int, skew: float, kurtosis: float, trial_sharpes: Sequence[float]) -> float:
    """Deflated Sharpe ratio: the probabilistic Sharpe ratio against the expected maximum Sharpe of the trials.

    Bailey & Lopez de Prado (2014), eq. 2: ``DSR = PSR(SR0)`` with ``SR0 = expected_max_sharpe(trial_sharpes)``.
    Every Sharpe (``sr`` and each trial's) is PER-PERIOD, not annualised; ``kurtosis`` is the plain (Pearson)
    kurtosis, 3 for normal returns. The more configurations were tried (the larger N at the same spread), the
    higher the bar and the lower the figure.
    """
    return probabilistic_sharpe(sr, expected_max_sharpe(trial_sharpes), n_obs, skew, kurtosis)


def _resamples(n: int, block: int | None, n_boot: int, seed: int) -> Iterator[NDArray[np.intp]]:
    """``n_boot`` index arrays of length ``n`` for the circular block bootstrap, from one seeded generator.

    The block starts are drawn at once (``_block_starts``, small); the index arrays are made one at a time, so
    memory stays O(n) however many resamples (all at once would be ``n_boot x n`` integers: 800 MB for 2000
    resamples of 50,000 bars).
    """
    starts, size = _block_starts(n, block, n_boot, seed)
    offsets = np.arange(size)
    return ((row[:, None] + offsets).ravel()[:n] % n for row in starts)


def _block_starts(n: int, block: int | None, n_boot: int, seed: int) -> tuple[NDArray[np.int64], int]:
    """``(n_boot x ceil(n / size))`` circular block starts and the block size: resample ``i`` is the blocks
    ``starts[i, j] .. starts[i, j] + size - 1`` (mod ``n``) in order, cut to ``n`` bars."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    size = default_block(n) if block is None else block
    if not 1 <= size <= n:
        raise ValueError(f"block must lie in [1, {n}], got {size}")
    blocks = -(-n // size)
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, blocks)), size


def _series(returns: ArrayLike) -> NDArray[np.float64]:
    r = _array(returns)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"expected a non-empty 1-D return series, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("the return series holds non-finite values")
    return r


def _array(returns: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(returns, dtype=np.float64)


def _equity(returns: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    return out
