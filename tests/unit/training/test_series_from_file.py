"""A user's own bars as a TrainingSeries: ``series_from_bars`` and ``series_from_file`` (scenario format)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ffe.adapters.replay import datasets, load_bars
from ffe.domain.errors import InvalidInputError
from ffe.training.data import load_series, read_bars_file, series_from_bars, series_from_file

HEADER = "asset,timeframe,time,open,high,low,close,volume"


def _lines(asset: str, n: int) -> list[str]:
    bars = load_bars(datasets()["SPX"].file)[-n:]
    return [f"{asset},1d,{b.time:%Y-%m-%dT%H:%M:%SZ},{b.open},{b.high},{b.low},{b.close},{b.volume}" for b in bars]


def test_series_from_bars_is_what_load_series_builds_for_the_same_bars() -> None:
    bundled = load_series("SPX")
    bars = load_bars(datasets()["SPX"].file)
    ours = series_from_bars("SPX", "equity", "1d", bars, bundled.sha256)
    assert (ours.symbol, ours.asset_class, ours.timeframe, ours.sha256) == ("SPX", "equity", "1d", bundled.sha256)
    for name in ("times", "opens", "highs", "lows", "closes"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(bundled, name))
    assert ours.periods_per_year == 252 and ours.offset == 0


def test_series_from_bars_refuses_unsound_bars_and_typos() -> None:
    bars = load_bars(datasets()["SPX"].file)[:10]
    with pytest.raises(InvalidInputError, match=r"bar 3 .*duplicated timestamp"):
        series_from_bars("SPX", "equity", "1d", [*bars[:3], bars[2], *bars[3:]], "0" * 64)
    with pytest.raises(ValueError, match="'equities'"):
        series_from_bars("SPX", "equities", "1d", bars, "0" * 64)


def test_series_from_file_reads_the_scenario_format_and_names_the_files_bytes(tmp_path: Path) -> None:
    path = tmp_path / "spx.csv"
    path.write_text("\n".join([HEADER, *_lines("SPX", 130)]) + "\n")
    series = series_from_file(path)
    assert (series.symbol, series.asset_class, series.timeframe, len(series)) == ("SPX", "equity", "1d", 130)
    assert series.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(series.closes, load_series("SPX").closes[-130:])


def test_series_from_file_picks_an_asset_from_a_json_file(tmp_path: Path) -> None:
    fields = HEADER.split(",")
    rows = [dict(zip(fields, line.split(","), strict=True)) for line in _lines("SPX", 125) + _lines("SPY", 125)]
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"bars": rows}))
    assert series_from_file(path, "SPY").symbol == "SPY"
    with pytest.raises(InvalidInputError, match="pick one with --asset"):
        series_from_file(path)
    with pytest.raises(InvalidInputError, match="no bars for AAPL"):
        series_from_file(path, "AAPL")


def test_read_bars_file_names_the_line_of_a_bad_bar(tmp_path: Path) -> None:
    lines = _lines("SPX", 130)
    cells = lines[40].split(",")
    cells[4] = str(float(cells[6]) / 2)  # high below the close
    lines[40] = ",".join(cells)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(InvalidInputError, match=r"bad\.csv line 42 \(SPX .*\): high/low do not bracket"):
        read_bars_file(path)
