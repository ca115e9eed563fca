"""ffe.domain.windows stands for numpy calls bit for bit: the view sliding_window_view makes, ndarray.mean and
ndarray.std along its rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.lib.stride_tricks import sliding_window_view

from ffe.adapters.replay import load_bars
from ffe.domain.windows import means, stds, windows

CLOSES = np.array([b.close for b in load_bars("BTCUSD_1h.csv.gz")])
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(x=arrays(np.float64, st.integers(1, 200), elements=FINITE), data=st.data())
def test_windows_and_their_reductions_are_numpys(x: np.ndarray, data: st.DataObject) -> None:
    w = data.draw(st.integers(1, x.size))
    ours, theirs = windows(x, w), sliding_window_view(x, w)
    assert ours.shape == theirs.shape and ours.strides == theirs.strides and not ours.flags.writeable
    assert np.array_equal(ours, theirs)
    assert np.array_equal(means(ours), theirs.mean(axis=1))
    assert np.array_equal(stds(ours), theirs.std(axis=1))


@pytest.mark.parametrize("w", [2, 19, 20, 50, 60])
def test_on_real_returns_every_window_is_numpys_to_the_bit(w: int) -> None:
    r = np.diff(np.log(CLOSES))
    for start in (0, 1, 7, 333):  # windows of a slice sit where the whole series' windows do
        x = r[start:]
        assert np.array_equal(stds(windows(x, w)), sliding_window_view(x, w).std(axis=1))
        assert np.array_equal(means(windows(x, w)), sliding_window_view(x, w).mean(axis=1))


def test_a_constant_window_has_zero_spread_and_nan_stays_nan() -> None:
    assert np.array_equal(stds(windows(np.full(30, 7.25), 20)), np.zeros(11))
    x = np.arange(10.0)
    x[4] = np.nan
    assert np.array_equal(stds(windows(x, 3)), sliding_window_view(x, 3).std(axis=1), equal_nan=True)


@pytest.mark.parametrize(("size", "w"), [(5, 6), (5, 0), (0, 1)])
def test_a_window_longer_than_the_series_or_empty_is_refused(size: int, w: int) -> None:
    with pytest.raises(ValueError, match="window"):
        windows(np.ones(size), w)
