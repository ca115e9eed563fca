"""The backtester's per-series risk statistics are GateRisk's own, bit for bit: every window of real series, and
row sums that round exactly as ``math.fsum`` on the rows built to be hard (ties, cancellation, wide exponents)."""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.window_stats import WindowStats, correctly_rounded_row_sums
from ffe.domain.risk import ReturnStats, return_stats

LOOKBACK = 120  # MarketDataSettings.lookback_bars: GateRisk measures the last 119 log returns


@cache
def _log_returns(asset: str) -> list[float]:
    closes = [b.close for b in load_bars(datasets()[asset].file)]
    return [math.log(b / a) for a, b in itertools.pairwise(closes)]  # as GateRisk computes them


def _same(a: ReturnStats | None, b: ReturnStats | None) -> bool:
    if a is None or b is None:
        return a is b
    return a[0].hex() == b[0].hex() and a[1].as_tuple() == b[1].as_tuple()


def _hard_rows(rng: np.random.Generator) -> np.ndarray:
    """Rows where a careless sum goes wrong: exact halfway cases, cancellation, magnitudes 1e-300..1e300."""
    ties = rng.integers(-(2**20), 2**20, size=(200, 119)).astype(np.float64) * 2.0**-30
    ties[:, 0] = 2.0**23  # the exact sums need more than 53 bits: many land halfway between two floats
    cancel = rng.normal(0.0, 1.0, size=(200, 119))
    cancel[:, ::2] *= 1e16
    cancel[:, 1::2] = -cancel[:, ::2][:, : cancel[:, 1::2].shape[1]] + rng.normal(0.0, 1.0, size=(200, 59))
    wide = rng.normal(0.0, 1.0, size=(200, 119)) * 10.0 ** rng.integers(-300, 300, size=(200, 119))
    zeros = np.zeros((3, 119))
    return np.concatenate([ties, cancel, wide, zeros])


@pytest.mark.parametrize("asset", ["EURUSD", "SPX"])
def test_every_window_of_a_real_series_is_the_gates_own(asset: str) -> None:
    # Given a bundled series' log returns, as GateRisk reads them at each bar
    returns = _log_returns(asset)
    stats = WindowStats(returns, LOOKBACK, 0.95)
    stats.prepare(np.arange(len(returns) + 1))  # every bar in one batch, the short windows among them
    # Then each bar's statistics are return_stats over its window, bit for bit (the short ones at the start too)
    for t in range(len(returns) + 1):
        expected = return_stats(returns[max(0, t - LOOKBACK + 1) : t], 0.95)
        assert _same(stats.at(t), expected), t
        assert _same(stats.at(t), expected), t  # and the second look, from the cache


def test_unusable_windows_are_refused_as_the_gate_refuses_them() -> None:
    rng = np.random.default_rng(4)
    returns = [*rng.normal(0.0, 0.01, 300).tolist(), *[0.002] * 300]  # then a flat stretch: σ = 0
    returns[150] = math.nan  # every window holding it is unusable
    stats = WindowStats(returns, LOOKBACK, 0.99)
    stats.prepare(np.arange(0, len(returns) + 1, 2))  # half of them in one batch, the others on demand
    for t in range(len(returns) + 1):
        assert _same(stats.at(t), return_stats(returns[max(0, t - LOOKBACK + 1) : t], 0.99)), t
    assert stats.at(19) is None and stats.at(20) is not None  # fewer than 20 returns, then 20
    assert stats.at(150) is not None and stats.at(151) is None and stats.at(269) is None
    assert stats.at(270) is not None  # the NaN has left the window
    assert stats.at(418) is not None and stats.at(419) is None  # 119 equal returns: no volatility to size on


def test_a_lookback_too_short_for_a_usable_window_computes_nothing_ahead() -> None:
    returns = np.random.default_rng(5).normal(0.0, 0.01, 60).tolist()
    stats = WindowStats(returns, 15, 0.95)  # 14 returns a window: fewer than the gate's 20
    assert all(stats.at(t) is None for t in range(61))


def test_row_sums_round_as_math_fsum_on_hard_rows() -> None:
    rows = _hard_rows(np.random.default_rng(20261203))
    sums = correctly_rounded_row_sums(rows)
    expected = [math.fsum(row) for row in rows.tolist()]
    assert [s.hex() for s in sums.tolist()] == [e.hex() for e in expected]


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e290, max_value=1e290)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(finite, min_size=5, max_size=5), min_size=1, max_size=12), st.integers(0, 40))
def test_row_sums_round_as_math_fsum(rows: list[list[float]], shift: int) -> None:
    m = np.array(rows) * 2.0**-shift
    assert [s.hex() for s in correctly_rounded_row_sums(m).tolist()] == [math.fsum(r).hex() for r in m.tolist()]


def test_row_sums_of_non_finite_rows_are_math_fsums_too() -> None:
    m = np.array([[1.0, math.nan, 2.0], [math.inf, 1.0, 2.0], [1.0, 2.0, 3.0]])
    sums = correctly_rounded_row_sums(m)
    assert math.isnan(sums[0]) and sums[1] == math.inf and sums[2] == 6.0
    with pytest.raises(ValueError):  # math.fsum's own refusal of inf - inf
        correctly_rounded_row_sums(np.array([[math.inf, -math.inf]]))
    assert correctly_rounded_row_sums(np.empty((2, 0))).tolist() == [0.0, 0.0]


def test_a_window_prepared_in_any_batch_is_the_gates_own() -> None:
    # Given the bars a backtest will gate, prepared in batches of their own (a row's numbers depend on it alone)
    returns = _log_returns("EURUSD")[:1500]
    stats = WindowStats(returns, LOOKBACK, 0.95)
    rng = np.random.default_rng(16)
    for batch in (rng.choice(1501, 300, replace=False), np.array([130, 131, 1500, 5, 2000]), np.array([], int)):
        stats.prepare(batch)
    # Then every bar, prepared or computed on demand, is return_stats over its window, bit for bit
    for t in range(len(returns) + 1):
        assert _same(stats.at(t), return_stats(returns[max(0, t - LOOKBACK + 1) : t], 0.95)), t
