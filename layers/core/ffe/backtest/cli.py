"""``ffe backtest``: replay a bundled series, or a user's own bars (``--bars``), through every strategy and
write the report.

Registered by ``ffe.cli``: ``add_arguments(subparser)`` then ``command(args)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ffe.adapters.models import ModelBundle, ModelStore, ModelUnavailableError, bundled_version, load_bundle
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe

DEFAULT_STATE_DIR = Path(".ffe")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--asset",
        default=None,
        help="a bundled series (default EURUSD); with --bars, the file's asset to backtest (default: its only one)",
    )
    parser.add_argument(
        "--bars",
        type=Path,
        default=None,
        metavar="FILE",
        help="your own bars instead of a bundled series: a scenario file (CSV or JSON: asset,timeframe,time,open,"
        "high,low,close[,volume]; examples/README.md), one asset of one timeframe, at least 120 bars",
    )
    parser.add_argument(
        "--span",
        choices=["holdout", "all"],
        default="holdout",
        help="holdout: the last 25%% of the series, which training never sees (default); all: the whole series",
    )
    parser.add_argument(
        "--model-version",
        default=None,
        help="a bundle version from the local model store <state dir>/models/ (or the shipped one); default: the "
        "local champion (the embedded Postgres' model_champions), else the bundled one",
    )
    parser.add_argument(
        "--model-uri",
        default=None,
        help="instead of a version: one bundle folder, s3://bucket/prefix or 'bundled'",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: <state dir>/backtests/<asset>-<timestamp>/)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def command(args: argparse.Namespace) -> int:
    """Run the backtest the arguments describe, print the table, write the report; 0 on success."""
    # Imported here: `ffe` builds every subcommand's parser, and `ffe run` should not pay for the engine.
    from ffe.backtest.engine import BacktestConfig, BarArrays, holdout_start, run_backtest
    from ffe.backtest.report import format_table, write_report
    from ffe.training.data import HOLDOUT_FRACTION

    series = _own_bars(args) if args.bars is not None else _bundled(args.asset or "EURUSD")
    if series is None:
        return 2
    asset, timeframe, rows, asset_class = series
    bundle: ModelBundle | ModelUnavailableError
    try:
        if args.model_uri:
            print(f"model bundle: {args.model_uri}")
            bundle = load_bundle(args.model_uri)
        else:
            store = ModelStore(str(_state_dir(args) / "models"))
            version = args.model_version or _local_champion(args) or bundled_version()
            print(f"model version: {version} ({store.uri(version)})")
            bundle = store.bundle(version)
    except ModelUnavailableError as exc:
        bundle = exc
        print(f"model bundle unavailable, the meta-controller row runs the naive-router fallback: {exc}")
    bars = BarArrays.from_bars(rows)
    start = holdout_start(bars.times, HOLDOUT_FRACTION) if args.span == "holdout" else None
    config = BacktestConfig(progress=not args.no_progress)
    result = run_backtest(bars, asset, timeframe, bundle, start=start, config=config, asset_class=asset_class)
    out = args.out or _default_out(args, asset)
    paths = write_report(result, out)
    print(format_table(result))
    print(f"report: {paths['json']}")
    for name, path in paths.items():
        if name != "json":
            print(f"  {name}: {path}")
    return 0


def _bundled(asset: str) -> tuple[str, Timeframe, Sequence[Bar], AssetClass | None] | None:
    """A bundled series' bars; None (the message printed) when none is bundled for ``asset``."""
    from ffe.adapters.replay import datasets, load_bars

    known = datasets()
    dataset = known.get(asset)
    if dataset is None:
        print(f"no bundled series for {asset!r}; bundled: {', '.join(sorted(known))}", file=sys.stderr)
        return None
    return asset, dataset.timeframe, load_bars(dataset.file), None  # a bundled symbol is in the table


def _own_bars(args: argparse.Namespace) -> tuple[str, Timeframe, Sequence[Bar], AssetClass] | None:
    """``--bars``: the file's bars, checked; None (one line printed on stderr) when the file is not usable."""
    from ffe.training.data import read_bars_file

    try:
        own = read_bars_file(args.bars, args.asset)
    except InvalidInputError as exc:  # names the file, and the line or row at fault
        print(f"ffe backtest: error: {exc}", file=sys.stderr)
        return None
    print(
        f"bars: {own.path}: {len(own.bars)} {own.timeframe} bars of {own.asset} ({own.asset_class}, "
        f"sha256 {own.sha256[:12]})"
    )
    return own.asset, own.timeframe, own.bars, own.asset_class


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "state_dir", None) or DEFAULT_STATE_DIR)


def _local_champion(args: argparse.Namespace) -> str | None:
    """The champion in the embedded Postgres of the state dir; None when there is no local state."""
    from ffe.local.runner import LocalState
    from ffe.training.cli import local_champion

    return local_champion(LocalState(_state_dir(args)))


def _default_out(args: argparse.Namespace, asset: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    state = getattr(args, "state_dir", None) or DEFAULT_STATE_DIR
    return Path(state) / "backtests" / f"{asset}-{stamp}"
