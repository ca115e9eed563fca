"""A LiveProvider whose answers a test scripts (implements ffe.domain.ports.LiveProvider)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.errors import FfeError
from ffe.domain.models import AssetClass, Bar, Timeframe


class ScriptedProvider:
    def __init__(self, name: str, classes: tuple[AssetClass, ...] = tuple(AssetClass)) -> None:
        self.name = name
        self.classes = classes
        self.failure: FfeError | None = None
        self.bars: Callable[[str, Timeframe, datetime], list[Bar]] = lambda asset, tf, end: synthetic_bars(
            asset, tf, end, 300
        )
        self.calls: list[tuple[str, Timeframe, datetime | None, datetime]] = []
        self.classes_given: list[AssetClass | None] = []  # the asset_class each call passed (the universe file's)

    def supports(self, asset_class: AssetClass) -> bool:
        return asset_class in self.classes

    def candles(
        self,
        asset: str,
        timeframe: Timeframe,
        start: datetime | None,
        end: datetime,
        asset_class: AssetClass | None = None,
    ) -> list[Bar]:
        self.calls.append((asset, timeframe, start, end))
        self.classes_given.append(asset_class)
        if self.failure is not None:
            raise self.failure
        return [b for b in self.bars(asset, timeframe, end) if (start is None or b.time >= start) and b.time < end]

    def probe(self) -> None:
        if self.failure is not None:
            raise self.failure
