"""Domain vocabulary: timeframes, actions, bars."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol


class Timeframe(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def duration(self) -> timedelta:
        return _DURATIONS[self]

    @property
    def is_daily(self) -> bool:
        return self is Timeframe.D1

    @property
    def bars_per_day(self) -> float:
        """How many bars make a day: scales one bar's volatility to a day's (24 for 1h, 1 for 1d)."""
        return 86_400.0 / self.duration.total_seconds()


_DURATIONS = {
    Timeframe.M1: timedelta(minutes=1),
    Timeframe.M5: timedelta(minutes=5),
    Timeframe.M15: timedelta(minutes=15),
    Timeframe.M30: timedelta(minutes=30),
    Timeframe.H1: timedelta(hours=1),
    Timeframe.H4: timedelta(hours=4),
    Timeframe.D1: timedelta(days=1),
}


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class AssetClass(StrEnum):
    CRYPTO = "crypto"
    FX = "fx"
    EQUITY = "equity"


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; ``time`` is the bar's open time in UTC."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


class BarLike(Protocol):
    """What reading a bar needs: a :class:`Bar`, or the contracts' ``BarModel`` as parsed (no copy into a ``Bar``)."""

    @property
    def time(self) -> datetime: ...
    @property
    def open(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def close(self) -> float: ...
    @property
    def volume(self) -> float: ...


class BarColumnsLike(Protocol):
    """A series' bars as columns (the contracts' ``BarColumns``, as the states hand them over): bar ``i`` opens at
    POSIX second ``time[i]`` plus ``microsecond[i]`` (``None``: every bar opens on a second), its prices at index
    ``i`` of each price column. The steps read these directly instead of rebuilding a :class:`Bar` per bar."""

    @property
    def time(self) -> Sequence[int]: ...
    @property
    def microsecond(self) -> Sequence[int] | None: ...
    @property
    def open(self) -> Sequence[float]: ...
    @property
    def high(self) -> Sequence[float]: ...
    @property
    def low(self) -> Sequence[float]: ...
    @property
    def close(self) -> Sequence[float]: ...
    @property
    def volume(self) -> Sequence[float]: ...


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def open_time(columns: BarColumnsLike, index: int) -> datetime:
    """Bar ``index``'s open time (negative counts from the end), an aware UTC datetime: the instant a
    :class:`Bar` rebuilt from ``columns`` holds (``BarColumns.times``)."""
    micro = columns.microsecond
    return EPOCH + timedelta(0, columns.time[index], micro[index] if micro is not None else 0)
