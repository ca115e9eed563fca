"""Replay provider: serves bundled real bars (and seeded synthetic ones where no real series ships)
as they would have been available at a simulated ``as_of``."""

from __future__ import annotations

import csv
import gzip
import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.ports import FetchedSeries
from ffe.domain.resample import resample
from ffe.domain.universe import ASSET_CLASSES

DATA_PACKAGE = "ffe.data.bars"


@dataclass(frozen=True, slots=True)
class Dataset:
    symbol: str
    timeframe: Timeframe
    file: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.file} ({self.source})"


class ReplayProvider:
    """Bundled history replayed up to ``as_of``; only *completed* bars are served (close <= as_of)."""

    name = "replay"

    def fetch(
        self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int, asset_class: AssetClass | None = None
    ) -> FetchedSeries:
        if asset not in ASSET_CLASSES:  # unknown symbols fail here, before any data is touched
            raise InvalidInputError(
                f"replay has no bars for {asset}: it serves the built-in symbols ({', '.join(sorted(ASSET_CLASSES))});"
                " decide other assets on your own bars (ffe run --bars)",
                asset=asset,
            )
        dataset = datasets().get(asset)
        if dataset is None:
            bars = synthetic_bars(asset, timeframe, as_of, lookback)
            return FetchedSeries(bars, f"synthetic:{asset}:seeded", synthetic=True, simulated_clock=True)
        bars = _completed(dataset, timeframe, as_of, lookback)
        return FetchedSeries(bars, dataset.label, synthetic=False, simulated_clock=True)


@cache
def datasets() -> dict[str, Dataset]:
    """The bundled real series, by symbol, from ``manifest.json``."""
    manifest = json.loads(resources.files(DATA_PACKAGE).joinpath("manifest.json").read_text())
    return {
        entry["symbol"]: Dataset(entry["symbol"], Timeframe(entry["timeframe"]), entry["file"], entry["source"])
        for entry in manifest
        if not entry.get("synthetic", False)
    }


def no_bars_at(timeframe: Timeframe, assets: Iterable[str]) -> dict[str, Timeframe]:
    """The assets whose bundled series is coarser than ``timeframe``, with the bundled timeframe: replay serves
    them no bars at ``timeframe`` (``_completed``). Assets without a bundled series get synthetic bars."""
    coarser = {a: d.timeframe for a, d in datasets().items() if timeframe.duration < d.timeframe.duration}
    return {a: coarser[a] for a in assets if a in coarser}


@cache
def load_bars(file: str) -> tuple[Bar, ...]:
    """Parse one bundled ``time,open,high,low,close,volume`` gzip CSV (cached per process)."""
    raw = resources.files(DATA_PACKAGE).joinpath(file).read_bytes()
    rows = csv.DictReader(gzip.decompress(raw).decode().splitlines())
    return tuple(
        Bar(
            datetime.fromisoformat(r["time"]),
            float(r["open"]),
            float(r["high"]),
            float(r["low"]),
            float(r["close"]),
            float(r["volume"] or 0.0),
        )
        for r in rows
    )


@cache
def _open_times(file: str) -> tuple[datetime, ...]:
    return tuple(b.time for b in load_bars(file))


def _completed(dataset: Dataset, timeframe: Timeframe, as_of: datetime, lookback: int) -> list[Bar]:
    native = dataset.timeframe
    if timeframe.duration < native.duration:
        return []  # the bundled set has no finer bars: an empty series, which the staleness gate holds on
    bars = load_bars(dataset.file)
    closed = bisect_right(_open_times(dataset.file), as_of - native.duration)
    if timeframe == native:
        return list(bars[max(0, closed - lookback) : closed])
    return resample(bars[:closed], timeframe, as_of)[-lookback:]
