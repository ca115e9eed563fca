"""The data gate (docs/decision-cycle.md, The data gate): fail closed; data that must not count as fresh never
reaches a model.

The rules, in the order they are checked; the first that fails gives the verdict's ``code``:

* ``no_bars``: the provider returned nothing.
* ``forming_bar``: the last bar closes (open + timeframe) after ``now``: it is still forming.
* ``insufficient_history``: fewer bars than the models read (``min_bars``).
* ``stale``, intraday: the last bar's close is older than ``THRESHOLDS[timeframe]``.
* ``stale``, daily: more than ``daily_max_missing_sessions`` sessions (``ffe.domain.sessions``) have
  closed since the last bar. Daily bars have no age limit as such: this count is what holds a daily
  series that stopped.
* ``gappy_data``: between two bars of the series, more than ``GAP_TOLERANCE_BARS[asset_class]`` bars
  that the asset class's calendar expects are missing (a daily series counts sessions). Hours the market
  is closed are never a gap: FX weekends, equity nights, weekends and NYSE holidays.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import compress, repeat
from typing import Protocol

from ffe.domain.models import AssetClass, BarColumnsLike, BarLike, Timeframe, open_time
from ffe.domain.sessions import CALENDARS, expected_bars

# Maximum age of the last bar's *close*, by timeframe. Daily bars are judged by sessions missing instead.
THRESHOLDS: dict[Timeframe, timedelta | None] = {
    Timeframe.M1: timedelta(minutes=15),
    Timeframe.M5: timedelta(minutes=15),
    Timeframe.M15: timedelta(minutes=30),
    Timeframe.M30: timedelta(minutes=60),
    Timeframe.H1: timedelta(minutes=120),
    Timeframe.H4: timedelta(minutes=120),
    Timeframe.D1: None,
}

# Expected bars (sessions, for daily series) that may be missing between two bars. The calendar already
# leaves out the hours a class does not trade; this absorbs the bars a venue skips when nothing traded.
GAP_TOLERANCE_BARS: dict[AssetClass, int] = {AssetClass.CRYPTO: 3, AssetClass.FX: 3, AssetClass.EQUITY: 3}
DEFAULT_DAILY_MAX_MISSING_SESSIONS = 3
_COUNT_CAP = 10_000  # expected bars are counted up to here: a gap of years costs no more


class GateCode(StrEnum):
    FRESH = "fresh"
    NO_BARS = "no_bars"
    FORMING_BAR = "forming_bar"
    INSUFFICIENT_HISTORY = "insufficient_history"
    STALE = "stale"
    GAPPY_DATA = "gappy_data"


@dataclass(frozen=True, slots=True)
class StalenessVerdict:
    code: GateCode
    reason: str  # what a HOLD on this verdict records: "<code>: <detail>" ("stale data: ..." for ``stale``)
    bar_count: int
    last_bar_time: datetime | None
    age_seconds: float | None
    threshold_seconds: int | None

    @property
    def stale(self) -> bool:
        """True when the data must not reach a model, whatever the rule."""
        return self.code is not GateCode.FRESH


def assess_staleness(
    bars: Sequence[BarLike],
    timeframe: Timeframe,
    now: datetime,
    min_bars: int,
    *,
    asset_class: AssetClass,
    daily_max_missing_sessions: int = DEFAULT_DAILY_MAX_MISSING_SESSIONS,
    history_note: str = "",
) -> StalenessVerdict:
    """Judge whether ``bars`` may be decided on at ``now`` (the injected clock); the rules are in the module doc.

    The age is measured from the last bar's close (open time + timeframe). ``history_note`` says where
    ``min_bars`` comes from, for the ``insufficient_history`` reason.
    """
    return _judge(_BarTimes(bars), timeframe, now, min_bars, asset_class, daily_max_missing_sessions, history_note)


def assess_staleness_columns(
    columns: BarColumnsLike,
    timeframe: Timeframe,
    now: datetime,
    min_bars: int,
    *,
    asset_class: AssetClass,
    daily_max_missing_sessions: int = DEFAULT_DAILY_MAX_MISSING_SESSIONS,
    history_note: str = "",
) -> StalenessVerdict:
    """:func:`assess_staleness` of the bars ``columns`` hold, the same verdict (tests/unit/domain/test_staleness.py
    compares the two), read from the integer open times: no bar is rebuilt, only the instants a reason names."""
    return _judge(
        _ColumnTimes(columns), timeframe, now, min_bars, asset_class, daily_max_missing_sessions, history_note
    )


class _Times(Protocol):
    """The bars' open times as the gate reads them."""

    def __len__(self) -> int: ...
    def at(self, index: int) -> datetime: ...
    def wider_than(self, room: timedelta) -> list[int]:
        """Every ``i`` whose bars ``i - 1`` and ``i`` open more than ``room`` apart, in order."""
        ...


class _BarTimes:
    def __init__(self, bars: Sequence[BarLike]) -> None:
        self.bars = bars

    def __len__(self) -> int:
        return len(self.bars)

    def at(self, index: int) -> datetime:
        return self.bars[index].time

    def wider_than(self, room: timedelta) -> list[int]:
        times = [bar.time for bar in self.bars]
        apart = map(operator.sub, times[1:], times[:-1])  # apart[i - 1]: between bars i - 1 and i
        return list(compress(range(1, len(times)), map(operator.gt, apart, repeat(room))))


class _ColumnTimes:
    def __init__(self, columns: BarColumnsLike) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns.time)

    def at(self, index: int) -> datetime:
        return open_time(self.columns, index)

    def wider_than(self, room: timedelta) -> list[int]:
        # The same comparison as _BarTimes' in integers: two instants are more than `room` apart exactly when their
        # microsecond counts are; whole seconds d are (d * 10**6 > r exactly when d > r // 10**6, r = room in µs).
        seconds, micro = self.columns.time, self.columns.microsecond
        if micro is None:
            times, limit = seconds, room // _SECOND
        else:
            times, limit = list(map(_micros, seconds, micro)), room // _MICROSECOND
        apart = map(operator.sub, times[1:], times[:-1])
        return list(compress(range(1, len(times)), map(operator.gt, apart, repeat(limit))))


_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)


def _micros(seconds: int, microsecond: int) -> int:
    return seconds * 1_000_000 + microsecond


def _judge(
    times: _Times,
    timeframe: Timeframe,
    now: datetime,
    min_bars: int,
    asset_class: AssetClass,
    daily_max_missing_sessions: int,
    history_note: str,
) -> StalenessVerdict:
    threshold = THRESHOLDS[timeframe]
    threshold_s = None if threshold is None else int(threshold.total_seconds())
    count = len(times)
    if not count:
        return StalenessVerdict(GateCode.NO_BARS, "no_bars: the provider returned no bars", 0, None, None, threshold_s)

    last = times.at(-1)
    close = last + timeframe.duration
    age = (now - close).total_seconds()

    def verdict(code: GateCode, reason: str) -> StalenessVerdict:
        return StalenessVerdict(code, reason, count, last, max(0.0, age), threshold_s)

    if age < 0:
        return verdict(
            GateCode.FORMING_BAR,
            f"forming_bar: the last bar (opened {last.isoformat()}) closes at {close.isoformat()}, "
            f"after {now.isoformat()}: a bar still forming is never decided on",
        )
    if count < min_bars:
        note = f" ({history_note})" if history_note else ""
        return verdict(
            GateCode.INSUFFICIENT_HISTORY,
            f"insufficient_history: only {count} bars, at least {min_bars} needed{note}",
        )
    if threshold_s is not None:
        age_text, limit_text = _readings(age, threshold_s)
        if age > threshold_s:
            return verdict(
                GateCode.STALE, f"stale data: last bar closed {age_text} ago, limit for {timeframe} is {limit_text}"
            )
        fresh = f"last bar closed {age_text} ago (limit {limit_text})"
    else:
        missing = expected_bars(asset_class, timeframe, close, now, cap=_COUNT_CAP)
        sessions = f"{_count(missing)} {asset_class} session{'s' if missing != 1 else ''} missing since"
        if missing > daily_max_missing_sessions:
            return verdict(
                GateCode.STALE,
                f"stale data: daily bars, {sessions} the last bar ({last.date().isoformat()}), "
                f"more than the {daily_max_missing_sessions} allowed",
            )
        fresh = f"last bar closed {human_duration(age)} ago ({sessions} it, at most {daily_max_missing_sessions})"
    gap = _gap(times, timeframe, asset_class)
    if gap is not None:
        before, after, missing = gap
        unit = "sessions" if timeframe.is_daily else f"{timeframe} bars"
        return verdict(
            GateCode.GAPPY_DATA,
            f"gappy_data: {_count(missing)} expected {unit} missing between the bars of {before.isoformat()} "
            f"and {after.isoformat()} ({human_duration((after - before).total_seconds())} apart), "
            f"tolerance {GAP_TOLERANCE_BARS[asset_class]} ({CALENDARS[asset_class]})",
        )
    return verdict(GateCode.FRESH, fresh)


def _gap(times: _Times, timeframe: Timeframe, asset_class: AssetClass) -> tuple[datetime, datetime, int] | None:
    """The most recent pair of neighbouring bars with more expected bars missing between them than tolerated:
    their open times and the count."""
    tolerance = GAP_TOLERANCE_BARS[asset_class]
    step = timeframe.duration
    room = step * (tolerance + 1)  # neighbours this close cannot have more than `tolerance` slots between them
    for i in reversed(times.wider_than(room)):
        before, after = times.at(i - 1), times.at(i)
        missing = expected_bars(asset_class, timeframe, before + step, after, cap=_COUNT_CAP)
        if missing > tolerance:
            return before, after, missing
    return None


def _count(n: int) -> str:
    return f"at least {n}" if n >= _COUNT_CAP else str(n)


def _readings(age: float, limit: int) -> tuple[str, str]:
    """The age and the limit in the same words, never reading as equal unless they are.

    When the coarse readings coincide (901 s and 900 s are both "15 min"), both are given in whole seconds,
    the age rounded away from the limit.
    """
    age_text, limit_text = human_duration(age), human_duration(limit)
    if age_text == limit_text and age != limit:
        whole = math.ceil(age) if age > limit else math.floor(age)
        return f"{whole} s", f"{limit} s"
    return age_text, limit_text


def human_duration(seconds: float) -> str:
    """A short human reading of a duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min" if minutes else f"{int(seconds)} s"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"
