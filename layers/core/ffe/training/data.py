"""Training data: the bundled real series as arrays, with the splits every fit and evaluation share.

The last quarter of each series is the holdout: nothing in ``ffe.training`` fits on it, so the figures measured
there are out of sample. Inside the training part, walk-forward splits keep every test block strictly after the
rows its model was trained on. Each series carries the SHA-256 of its bundled file so a tracked run names the
exact bytes it learnt from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from ffe.adapters.replay import DATA_PACKAGE, datasets, load_bars
from ffe.domain.models import AssetClass, Timeframe
from ffe.domain.performance import periods_per_year
from ffe.domain.universe import asset_class_of

HOLDOUT_FRACTION = 0.25  # the tail of each bundled series that training never sees (the backtester's default span)


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
