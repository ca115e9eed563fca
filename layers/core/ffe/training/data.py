"""Training data: the bundled real series as arrays, with the splits every fit and evaluation share.

The last quarter of each series is the holdout: nothing in ``ffe.training`` fits on it, so the figures measured
there are out of sample. Inside the training part, walk-forward splits keep every test block strictly after the
rows its model was trained on. Each series carries the SHA-256 of its bundled file so a tracked run names the
exact bytes it learnt from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ffe.adapters.replay import DATA_PACKAGE, datasets, load_bars
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.performance import periods_per_year
from ffe.domain.series import validate_series
from ffe.domain.universe import asset_class_of

HOLDOUT_FRACTION = 0.25  # the tail of each bundled series that training never sees (the backtester's default span)
MIN_FILE_BARS = 120  # a user's file: the cycle's look-back (MarketDataSettings.lookback_bars, examples/README.md)


@dataclass(frozen=True, eq=False)
class TrainingSeries:
    symbol: str
    asset_class: str
    timeframe: str
    times: NDArray[np.datetime64]  # bar open times, UTC, datetime64[s]
    opens: NDArray[np.float64]
    highs: NDArray[np.float64]
    lows: NDArray[np.float64]
    closes: NDArray[np.float64]
    sha256: str  # of the bundled .csv.gz, whatever slice this is
    offset: int = 0  # index of the first row in the full bundled series

    def __len__(self) -> int:
        return int(self.closes.size)

    def slice(self, start: int, stop: int) -> TrainingSeries:
        """Rows ``start..stop-1`` (Python slice semantics), remembering where they sit in the full series."""
        lo, hi, _ = slice(start, stop).indices(len(self))
        hi = max(lo, hi)
        return TrainingSeries(
            symbol=self.symbol,
            asset_class=self.asset_class,
            timeframe=self.timeframe,
            times=self.times[lo:hi],
            opens=self.opens[lo:hi],
            highs=self.highs[lo:hi],
            lows=self.lows[lo:hi],
            closes=self.closes[lo:hi],
            sha256=self.sha256,
            offset=self.offset + lo,
        )

    @property
    def periods_per_year(self) -> float:
        return periods_per_year(AssetClass(self.asset_class), Timeframe(self.timeframe))


def asset_class_symbols() -> dict[str, tuple[str, ...]]:
    """The bundled real series grouped by asset class (one regime mixture is fitted per class)."""
    out: dict[str, list[str]] = {}
    for symbol in sorted(datasets()):
        out.setdefault(str(asset_class_of(symbol)), []).append(symbol)
    return {cls: tuple(symbols) for cls, symbols in sorted(out.items())}


def load_series(symbol: str) -> TrainingSeries:
    """One bundled real series as arrays.

    Raises:
        KeyError: no real series is bundled for ``symbol``.
    """
    dataset = datasets().get(symbol)
    if dataset is None:
        raise KeyError(f"no bundled real series for {symbol!r}; bundled: {', '.join(sorted(datasets()))}")
    raw = resources.files(DATA_PACKAGE).joinpath(dataset.file).read_bytes()
    bars = load_bars(dataset.file)
    n = len(bars)
    times = np.fromiter((int(b.time.timestamp()) for b in bars), np.int64, n).astype("datetime64[s]")
    return TrainingSeries(
        symbol=symbol,
        asset_class=str(asset_class_of(symbol)),
        timeframe=str(dataset.timeframe),
        times=times,
        opens=np.fromiter((b.open for b in bars), np.float64, n),
        highs=np.fromiter((b.high for b in bars), np.float64, n),
        lows=np.fromiter((b.low for b in bars), np.float64, n),
        closes=np.fromiter((b.close for b in bars), np.float64, n),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def holdout(n: int, fraction: float = HOLDOUT_FRACTION) -> tuple[slice, slice]:
    """``(train, test)`` over ``n`` rows: the last ``fraction`` of them is held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_test = round(n * fraction)
    if n_test < 1 or n_test >= n:
        raise ValueError(f"{n} rows cannot be split with a holdout fraction of {fraction}")
    return slice(0, n - n_test), slice(n - n_test, n)


def walk_forward(n: int, folds: int, min_train: int) -> list[tuple[slice, slice]]:
    """Expanding-window splits of ``n`` rows: fold ``i`` trains on ``[0, a_i)`` and tests on ``[a_i, a_{i+1})``.

    The ``n - min_train`` rows after the first training window are cut into ``folds`` equal test blocks
    (the last one takes the remainder).
    """
    if folds < 1 or min_train < 1:
        raise ValueError(f"need folds >= 1 and min_train >= 1, got {folds}, {min_train}")
    block = (n - min_train) // folds
    if block < 1:
        raise ValueError(f"{n} rows leave no test block for {folds} folds after {min_train} training rows")
    splits = []
    for i in range(folds):
        start = min_train + i * block
        stop = n if i == folds - 1 else start + block
        splits.append((slice(0, start), slice(start, stop)))
    return splits


# --- a user's own bars ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileBars:
    """One asset's bars from a user's scenario-format file (``ffe.adapters.scenario``), checked sound."""

    path: Path  # the file the bars came from
    asset: str
    timeframe: Timeframe
    bars: tuple[Bar, ...]
    sha256: str  # of that file's bytes
    asset_class: AssetClass  # the file's asset_class column, else the built-in table's


def read_bars_file(path: Path, asset: str | None = None, min_bars: int = MIN_FILE_BARS) -> FileBars:
    """One asset's bars from a scenario file (CSV or JSON, examples/README.md), read by the scenario loader.

    ``asset`` picks one of the file's assets; None takes its only one. The bars must be sound
    (:func:`ffe.domain.series.validate_series`: ascending unique times, finite positive prices, high/low
    bracketing open/close), belong to a symbol of the built-in table or carry an ``asset_class`` column, and
    number at least ``min_bars``.

    Raises:
        InvalidInputError: one line naming the file, and the line (CSV) or ``bars[i]`` (JSON) where a row is at
            fault.
    """
    from ffe.adapters.scenario import load_scenario

    scenario = load_scenario(path)
    if asset is None:
        if len(scenario.bars) > 1:
            raise InvalidInputError(f"{path}: bars for {', '.join(scenario.assets)}; pick one with --asset")
        asset = scenario.assets[0]
    if asset not in scenario.bars:
        raise InvalidInputError(f"{path}: no bars for {asset} (it has {', '.join(scenario.assets)})")
    name = scenario.sources[asset]
    file = path / name if path.is_dir() else path
    try:
        asset_class = scenario.classes.get(asset) or asset_class_of(asset)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{file}: {exc}, or give the file an asset_class column ({_CLASSES})") from None
    bars = scenario.bars[asset]
    try:
        validate_series(bars, datetime.max.replace(tzinfo=UTC))  # history: no bar is "in the future"
    except InvalidInputError as exc:
        raise InvalidInputError(_located(file, scenario.files[name], asset, str(exc))) from None
    if len(bars) < min_bars:
        raise InvalidInputError(
            f"{file}: {len(bars)} {asset} bars; a backtest needs at least {min_bars} (the cycle's look-back)"
        )
    sha256 = hashlib.sha256(scenario.files[name]).hexdigest()
    return FileBars(file, asset, scenario.timeframe, bars, sha256, asset_class)


_CLASSES = ", ".join(str(c) for c in AssetClass)


_BAR_AT = re.compile(r"^bar (\d+) \(([^)]*)\): (.*)$")  # validate_series' "bar 7 (2019-...): why"


def _located(file: Path, content: bytes, asset: str, message: str) -> str:
    """``validate_series``' message about bar ``i`` of ``asset``, with the file's line or ``bars[j]`` instead."""
    match = _BAR_AT.match(message)
    if match is None:
        return f"{file}: {asset}: {message}"
    index, time, why = int(match[1]), match[2], match[3]
    where = _row_names(file, content, asset)
    at = where[index] if index < len(where) else f"{asset} bar {index}"
    return f"{file} {at} ({asset} {time}): {why}"


def _row_names(file: Path, content: bytes, asset: str) -> list[str]:
    """Where each of ``asset``'s rows sits in its file, in file order: ``line N`` (CSV) or ``bars[j]`` (JSON),
    as the scenario loader names them (it has read the file, so this reading succeeds)."""
    import json

    from ffe.adapters.scenario import _csv_rows  # the loader's own row reader: the same lines it numbered

    text = content.decode("utf-8-sig")
    if file.suffix.lower() == ".csv":
        return [where for where, cells in _csv_rows(str(file), text) if cells.get("asset") == asset]
    rows = json.loads(text)["bars"]
    return [f"bars[{j}]" for j, row in enumerate(rows) if isinstance(row, dict) and row.get("asset") == asset]


def series_from_bars(symbol: str, asset_class: str, timeframe: str, bars: Sequence[Bar], sha256: str) -> TrainingSeries:
    """Any sound bar series (ascending unique UTC open times) as a :class:`TrainingSeries`, as
    :func:`load_series` builds a bundled one; ``sha256`` names the bytes the bars came from.

    Raises:
        InvalidInputError: bars :func:`ffe.domain.series.validate_series` refuses.
        ValueError: an unknown asset class or timeframe.
    """
    AssetClass(asset_class), Timeframe(timeframe)  # fail on a typo before any work
    validate_series(bars, datetime.max.replace(tzinfo=UTC))
    n = len(bars)
    times = np.fromiter((int(b.time.timestamp()) for b in bars), np.int64, n).astype("datetime64[s]")
    return TrainingSeries(
        symbol=symbol,
        asset_class=asset_class,
        timeframe=timeframe,
        times=times,
        opens=np.fromiter((b.open for b in bars), np.float64, n),
        highs=np.fromiter((b.high for b in bars), np.float64, n),
        lows=np.fromiter((b.low for b in bars), np.float64, n),
        closes=np.fromiter((b.close for b in bars), np.float64, n),
        sha256=sha256,
    )


def series_from_file(path: Path, asset: str | None = None) -> TrainingSeries:
    """A user's scenario-format file (:func:`read_bars_file`) as a :class:`TrainingSeries` carrying the file's
    SHA-256.

    Raises:
        InvalidInputError: as :func:`read_bars_file`.
    """
    own = read_bars_file(path, asset)
    return series_from_bars(own.asset, str(own.asset_class), str(own.timeframe), own.bars, own.sha256)
