"""The backtest's report (JSON + PNGs + terminal table) and the ``ffe backtest`` command's wiring."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import pytest

from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.cli import add_arguments, command
from ffe.backtest.engine import ALL_STRATEGIES, BacktestResult, BarArrays, run_backtest
from ffe.backtest.report import format_table, write_report
from ffe.domain.models import Timeframe
from tests.fakes.models import random_bundle, write_bundle

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRICS = {
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover",
    "churn_rate",
    "max_disruption",
    "trades",
    "blocked",
    "rejected",
    "mean_exposure",
}


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    bars = BarArrays.from_bars(load_bars(datasets()["ETHUSD"].file)[:500])
    start = datetime.fromisoformat(f"{bars.times[250]}+00:00")
    return run_backtest(bars, "ETHUSD", Timeframe.H1, random_bundle(seed=11), start=start)


def test_write_report_writes_every_strategys_metrics_and_valid_pngs(result: BacktestResult, tmp_path: Path) -> None:
    # When the report is written into an empty folder
    paths = write_report(result, tmp_path / "report")
    # Then the JSON holds the run's identity and every strategy's figures
    report = json.loads(paths["json"].read_text())
    assert set(report["strategies"]) == {str(s) for s in ALL_STRATEGIES}
    for figures in report["strategies"].values():
        assert set(figures["metrics"]) == METRICS
    assert report["bundle"]["version"] == "test-0001" and report["asset"] == "ETHUSD"
    first, last = (f"{t.astype('datetime64[s]')}Z" for t in (result.times[0], result.times[-1]))
    assert report["window"] == {"start": first, "end": last, "bars": 250}
    assert first == "2019-02-03T00:00:00Z"
    assert len(report["data"]["sha256"]) == 64 and report["data"]["bars_read"] == 500
    assert report["speed"]["bars_per_second"] > 0 and report["periods_per_year"] == 24 * 365
    assert report["config"]["fee_rate"] == "0.001" and report["risk_limits"]["max_position_fraction"] == 0.1
    assert set(report["regime_switch_choice"]) == set(random_bundle(seed=11).regimes["crypto"].labels)
    # And the three plots are real PNG files
    assert {name for name in paths if name != "json"} == {"equity", "drawdown", "weights"}
    for name in ("equity", "drawdown", "weights"):
        data = paths[name].read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name


def test_format_table_has_a_row_per_strategy(result: BacktestResult) -> None:
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].startswith("ETHUSD 1h") and "250 bars" in lines[0] and "test-0001" in lines[0]
    assert lines[1].split()[:3] == ["strategy", "return", "sharpe"]
    rows = {line.split()[0]: line for line in lines[3 : 3 + len(result.runs)]}
    assert set(rows) == set(result.runs)
    meta = result.runs["meta_controller"].metrics
    assert f"{meta.sharpe:+.2f}" in rows["meta_controller"] and str(meta.trades) in rows["meta_controller"]
    assert "bars/s" in lines[-1]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_backtests_the_holdout_with_a_bundle_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle_dir = write_bundle(random_bundle(seed=2), tmp_path / "bundle")
    args = _parse("--asset", "BTCUSD", "--model-uri", str(bundle_dir), "--out", str(tmp_path / "out"), "--no-progress")
    assert (args.span, args.no_progress) == ("holdout", True)
    assert command(args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["bundle"]["version"] == "test-0001"
    assert report["window"]["bars"] == 1500 and report["data"]["bars_read"] == 6000  # the last 25 % of 6000
    out = capsys.readouterr().out
    assert "meta_controller" in out and "report:" in out


def test_cli_says_when_the_bundle_cannot_load_and_runs_the_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse("--asset", "BTCUSD", "--model-uri", str(tmp_path / "missing"), "--no-progress")
    args.state_dir = tmp_path / "state"  # ffe's global --state-dir: the default report folder lives under it
    assert command(args) == 0
    out = capsys.readouterr().out
    assert "model bundle unavailable" in out and "naive-router fallback" in out
    [folder] = (tmp_path / "state" / "backtests").iterdir()
    assert folder.name.startswith("BTCUSD-")
    report = json.loads((folder / "report.json").read_text())
    assert report["bundle"]["version"] is None and "missing" in report["bundle"]["note"]
    assert "no regimes" in report["skipped"]["regime_switch"]
    assert report["strategies"]["meta_controller"] == report["strategies"]["naive_router"]  # the fallback row
    assert {p.name for p in folder.glob("*.png")} == {"equity.png", "drawdown.png", "weights.png"}


def test_cli_rejects_an_asset_without_a_bundled_series(capsys: pytest.CaptureFixture[str]) -> None:
    assert command(_parse("--asset", "GBPUSD")) == 2
    assert "no bundled series for 'GBPUSD'" in capsys.readouterr().err


def test_cli_backtests_a_version_from_the_local_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given two versions in the state dir's model store
    for seed, version in ((2, "ffe-00000000000a"), (3, "ffe-00000000000b")):
        write_bundle(random_bundle(seed=seed, version=version), tmp_path / "state" / "models" / version)
    args = _parse("--asset", "BTCUSD", "--model-version", "ffe-00000000000b", "--out", str(tmp_path / "out"))
    args.state_dir, args.no_progress = tmp_path / "state", True
    # Then the one named is the one backtested, read through the store
    assert command(args) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["bundle"]["version"] == "ffe-00000000000b"
    assert "model version: ffe-00000000000b" in capsys.readouterr().out
    # And a version not in the store runs the fallback, saying it is not published
    args = _parse("--asset", "BTCUSD", "--model-version", "ffe-00000000000c", "--out", str(tmp_path / "out2"))
    args.state_dir, args.no_progress = tmp_path / "state", True
    assert command(args) == 0
    assert "model ffe-00000000000c is not in" in capsys.readouterr().out
