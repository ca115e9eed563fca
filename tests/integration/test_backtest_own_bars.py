"""``ffe backtest --bars FILE``: a user's own bars in the scenario-file format, every strategy row, and one line
naming the file and row (exit 2) for a file that cannot be backtested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import ALL_STRATEGIES
from ffe.cli import main

HEADER = "asset,timeframe,time,open,high,low,close,volume"
N = 160


def _rows(asset: str = "EURUSD", n: int = N, timeframe: str = "1h") -> list[str]:
    bars = load_bars(datasets()["EURUSD"].file)[-n:]
    return [
        f"{asset},{timeframe},{b.time:%Y-%m-%dT%H:%M:%SZ},{b.open},{b.high},{b.low},{b.close},{b.volume}" for b in bars
    ]


def _csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "mine.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _backtest(tmp_path: Path, bars: Path, *extra: str) -> int:
    argv = ["--state-dir", str(tmp_path / "state"), "backtest", "--bars", str(bars), "--model-uri", "bundled"]
    return main([*argv, "--out", str(tmp_path / "out"), "--no-progress", *extra])


def test_a_good_file_gives_every_strategy_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, _rows())
    assert _backtest(tmp_path, path) == 0
    out = capsys.readouterr().out
    assert f"{N} 1h bars of EURUSD" in out
    for name in ALL_STRATEGIES:
        assert f"\n{name} " in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["asset"] == "EURUSD" and report["timeframe"] == "1h"
    assert set(report["strategies"]) == {str(s) for s in ALL_STRATEGIES}
    assert report["window"]["bars"] == N // 4  # the holdout span, as for a bundled series


def test_asset_picks_one_of_several(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, _rows() + _rows("GBPUSD"))
    assert _backtest(tmp_path, path, "--asset", "GBPUSD", "--span", "all") == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["asset"] == "GBPUSD"


def test_a_symbol_outside_the_table_is_backtested_as_the_class_its_file_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path, [f"{row},fx" for row in _rows("NZDUSD")], header=f"{HEADER},asset_class")
    assert _backtest(tmp_path, path) == 0
    assert f"{N} 1h bars of NZDUSD (fx, sha256" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["asset"] == "NZDUSD" and set(report["strategies"]) == {str(s) for s in ALL_STRATEGIES}
    unclassed = _csv(tmp_path, _rows("NZDUSD"), name="unclassed.csv")
    assert _backtest(tmp_path, unclassed) == 2
    assert "or give the file an asset_class column (crypto, fx, equity)" in capsys.readouterr().err


def test_a_json_file_is_read_too(tmp_path: Path) -> None:
    fields = HEADER.split(",")
    bars = [dict(zip(fields, row.split(","), strict=True)) for row in _rows()]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"bars": [{**b, "open": float(b["open"])} for b in bars]}))
    assert _backtest(tmp_path, path) == 0


def _swap(rows: list[str], i: int, j: int) -> list[str]:
    rows = list(rows)
    rows[i], rows[j] = rows[j], rows[i]
    return rows


def _price(rows: list[str], i: int, value: str) -> list[str]:
    rows = list(rows)
    cells = rows[i].split(",")
    cells[5] = value  # low
    rows[i] = ",".join(cells)
    return rows


GOOD = _rows()
BAD = {
    # what is wrong: (header, rows, what the one line must say)
    "missing column": (
        HEADER.replace(",close", ""),
        [r.rsplit(",", 2)[0] + "," + r.rsplit(",", 1)[1] for r in GOOD],
        "line 1: missing column 'close'",
    ),
    "unsorted": (HEADER, _swap(GOOD, 10, 11), "line 13 (EURUSD "),
    "duplicate time": (HEADER, [*GOOD[:20], GOOD[19], *GOOD[20:]], "line 22 (EURUSD "),
    "non-positive price": (HEADER, _price(GOOD, 30, "0"), "line 32 (EURUSD "),
    "mixed timeframes": (
        HEADER,
        [*GOOD[:50], GOOD[50].replace(",1h,", ",4h,"), *GOOD[51:]],
        "line 52: timeframe 4h differs from 1h",
    ),
    "too few bars": (HEADER, GOOD[:60], "60 EURUSD bars; a backtest needs at least 120"),
    "two assets, no --asset": (HEADER, GOOD + _rows("GBPUSD"), "bars for EURUSD, GBPUSD; pick one with --asset"),
    "unknown asset": (HEADER, _rows("XYZABC"), "unknown asset 'XYZABC'; known assets: AAPL, BTCUSD"),
    "not a number": (
        HEADER,
        [GOOD[0].rsplit(",", 1)[0] + ",lots", *GOOD[1:]],
        "line 2: volume: ",
    ),
}
WHY = {
    "unsorted": "out of order",
    "duplicate time": "duplicated timestamp",
    "non-positive price": "low must be positive, got 0.0",
}


@pytest.mark.parametrize("problem", sorted(BAD))
def test_a_bad_file_is_one_line_naming_the_file_and_row_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    header, rows, says = BAD[problem]
    path = _csv(tmp_path, rows, header)
    assert _backtest(tmp_path, path) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"ffe backtest: error: {path}")
    assert says in lines[0]
    assert WHY.get(problem, "") in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()


def test_a_bad_json_row_is_named_by_its_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fields = HEADER.split(",")
    bars = [dict(zip(fields, row.split(","), strict=True)) for row in GOOD]
    bars[7]["time"] = bars[6]["time"]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"bars": bars}))
    assert _backtest(tmp_path, path) == 2
    err = capsys.readouterr().err
    assert f"{path} bars[7] (EURUSD " in err and "duplicated timestamp" in err


def test_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _backtest(tmp_path, tmp_path / "nope.csv") == 2
    assert "nope.csv: no such file or directory" in capsys.readouterr().err
