import hashlib
from importlib import resources

import numpy as np
import pytest

from ffe.adapters.replay import DATA_PACKAGE, datasets, load_bars
from ffe.training.data import asset_class_symbols, holdout, load_series, walk_forward


def test_load_series_matches_the_bundled_bars_and_names_their_bytes() -> None:
    # Given the bundled EURUSD file
    dataset = datasets()["EURUSD"]
    bars = load_bars(dataset.file)
    raw = resources.files(DATA_PACKAGE).joinpath(dataset.file).read_bytes()

    # When it is loaded for training
    series = load_series("EURUSD")

    # Then the arrays are the bars, in order, and the digest is that of the file
    assert len(series) == len(bars)
    assert series.asset_class == "fx" and series.timeframe == "1h"
    assert series.periods_per_year == 24 * 260
    assert series.sha256 == hashlib.sha256(raw).hexdigest()
    assert series.times.dtype == np.dtype("datetime64[s]")
    assert np.all(np.diff(series.times.astype(np.int64)) > 0)
    assert series.times[0] == np.datetime64("2017-01-01T22:00:00")
    assert series.closes[-1] == bars[-1].close and series.highs[10] == bars[10].high
    assert np.all(series.highs >= series.lows)


def test_slice_keeps_the_digest_and_remembers_its_offset() -> None:
    series = load_series("BTCUSD")
    part = series.slice(100, 250)
    assert len(part) == 150
    assert part.sha256 == series.sha256
    assert part.offset == 100
    assert part.slice(10, 20).offset == 110
    np.testing.assert_array_equal(part.closes, series.closes[100:250])


def test_asset_class_symbols_groups_the_real_series() -> None:
    assert asset_class_symbols() == {
        "crypto": ("BTCUSD", "ETHUSD", "LTCUSD", "XRPUSD"),
        "equity": ("IXIC", "MSFT", "SPX"),
        "fx": ("EURUSD",),
    }


def test_load_series_rejects_a_symbol_without_bundled_data() -> None:
    with pytest.raises(KeyError, match="GBPUSD"):
        load_series("GBPUSD")


def test_holdout_keeps_the_last_quarter_out() -> None:
    train, test = holdout(1000)
    assert (train.start, train.stop) == (0, 750)
    assert (test.start, test.stop) == (750, 1000)
    with pytest.raises(ValueError):
        holdout(1000, fraction=1.0)


def test_walk_forward_trains_strictly_before_each_test_block_and_covers_the_rest() -> None:
    splits = walk_forward(1003, folds=3, min_train=400)
    assert len(splits) == 3
    for train, test in splits:
        assert train.start == 0 and train.stop == test.start
    # expanding windows, contiguous test blocks, the last one takes the remainder
    assert [t.start for _, t in splits] == [400, 601, 802]
    assert splits[-1][1].stop == 1003
    with pytest.raises(ValueError):
        walk_forward(10, folds=5, min_train=9)
