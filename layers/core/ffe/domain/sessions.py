"""When each asset class trades, so the gate knows which bars a complete series must hold.

A bar is *expected* in a slot when the market trades through it and a provider should have a bar there.
Bars outside these hours (an FX bar on Sunday evening, an equity bar before the open) are accepted, but
none is expected there.

* **crypto**: around the clock, every day.
* **FX**: Monday to Friday, less 25 December and 1 January (UTC days; the bundled EURUSD history has no
  bars on Christmas Day 2017 between 07:00 and 22:00 UTC). The market closes and reopens at 17:00 New York
  time, which is 21:00 UTC in summer and 22:00 UTC in winter. No intraday bar is expected from Friday
  21:00 UTC to Sunday 22:00 UTC (both seasons' closures together), so a missing bar in the hour next to
  the weekend goes unnoticed. Other days a venue closes are not known here: they read as missing bars.
* **equity** (US listings): the NYSE regular session, 09:30-16:00 New York time, on NYSE trading days
  (Monday to Friday, less :func:`nyse_holidays`). An intraday slot is expected when it lies wholly inside
  the session. Not known here: early closes (13:00 before some holidays) and unscheduled closures not in
  ``NYSE_UNSCHEDULED_CLOSURES``. Both read as missing bars, so the gate holds instead of deciding.
* **daily bars** open at 00:00 UTC (every provider here aligns them so) and one is expected per session
  day: every day for crypto, Monday to Friday less the two FX holidays for FX, NYSE trading days for equities.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from ffe.domain.models import AssetClass, Timeframe

NEW_YORK = ZoneInfo("America/New_York")
NYSE_OPEN, NYSE_CLOSE = time(9, 30), time(16, 0)
FX_WEEKEND_CLOSE = timedelta(days=4, hours=21)  # Friday 21:00 UTC, from Monday 00:00 UTC
FX_WEEKEND_OPEN = timedelta(days=6, hours=22)  # Sunday 22:00 UTC
FX_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(12, 25), (1, 1)})  # (month, day)

# What each class's calendar expects, in a few words for the reasons the gate writes.
CALENDARS: dict[AssetClass, str] = {
    AssetClass.CRYPTO: "crypto trades around the clock",
    AssetClass.FX: "FX: no bars expected Friday 21:00 to Sunday 22:00 UTC, 25 Dec, 1 Jan",
    AssetClass.EQUITY: "equity: NYSE regular session, 09:30-16:00 New York time, on trading days",
}

# Full-day NYSE closures outside the holiday rules, since 2001 (listed by the exchange as special closings).
NYSE_UNSCHEDULED_CLOSURES: frozenset[date] = frozenset(
    {
        date(2001, 9, 11),
        date(2001, 9, 12),
        date(2001, 9, 13),
        date(2001, 9, 14),  # September 11
        date(2004, 6, 11),  # President Reagan's funeral
        date(2007, 1, 2),  # President Ford's funeral
        date(2012, 10, 29),
        date(2012, 10, 30),  # Hurricane Sandy
        date(2018, 12, 5),  # President G. H. W. Bush's funeral
        date(2025, 1, 9),  # President Carter's funeral
    }
)


def is_session_day(asset_class: AssetClass, day: date) -> bool:
    """Whether ``asset_class`` trades on ``day``: every day for crypto, weekdays less two holidays for FX,
    NYSE trading days for equities."""
    if asset_class is AssetClass.CRYPTO:
        return True
    if day.weekday() >= 5:
        return False
    if asset_class is AssetClass.FX:
        return (day.month, day.day) not in FX_HOLIDAYS
    return day not in nyse_holidays(day.year)


def expects_bar(asset_class: AssetClass, timeframe: Timeframe, start: datetime) -> bool:
    """Whether a bar opening at ``start`` (aware) must exist for the series to be complete."""
    if timeframe.is_daily:
        return is_session_day(asset_class, start.astimezone(UTC).date())
    end = start + timeframe.duration
    if asset_class is AssetClass.CRYPTO:
        return True
    if asset_class is AssetClass.FX:
        first, last = start.astimezone(UTC), (end - timedelta(microseconds=1)).astimezone(UTC)
        if any((d.month, d.day) in FX_HOLIDAYS for d in (first, last)):
            return False
        monday = datetime.combine(first.date() - timedelta(days=first.weekday()), time(0), UTC)
        return not (start < monday + FX_WEEKEND_OPEN and end > monday + FX_WEEKEND_CLOSE)
    first, last = start.astimezone(NEW_YORK), end.astimezone(NEW_YORK)
    return (
        first.date() == last.date()
        and is_session_day(asset_class, first.date())
        and first.time() >= NYSE_OPEN
        and last.time() <= NYSE_CLOSE
    )


def expected_bars(asset_class: AssetClass, timeframe: Timeframe, after: datetime, until: datetime, cap: int) -> int:
    """How many bars are expected in the slots ``after``, ``after + timeframe``, ... that close by ``until``.

    Counting stops at ``cap`` (the answer is then ``cap``), so a gap of years costs at most ``cap`` steps.
    """
    step = timeframe.duration
    slots = max(0, (until - after) // step)
    if asset_class is AssetClass.CRYPTO:
        return min(slots, cap)
    found, k = 0, 0
    while k < slots:
        start = after + k * step
        if expects_bar(asset_class, timeframe, start):
            found += 1
            if found >= cap:
                break
        elif (reopens := _fx_weekend_reopens(asset_class, timeframe, start)) is not None:
            k = max(k, -((after - reopens) // step) - 1)  # to the last slot opening before the reopening
        k += 1
    return found


def _fx_weekend_reopens(asset_class: AssetClass, timeframe: Timeframe, start: datetime) -> datetime | None:
    """When an FX intraday slot opening at ``start`` falls in the weekend closure, the closure's end: no slot that
    opens from ``start`` until then is expected either (``expects_bar``'s own rule), so counting skips them."""
    if asset_class is not AssetClass.FX or timeframe.is_daily:
        return None
    first = start.astimezone(UTC)
    monday = datetime.combine(first.date() - timedelta(days=first.weekday()), time(0), UTC)
    closed = start < monday + FX_WEEKEND_OPEN and start + timeframe.duration > monday + FX_WEEKEND_CLOSE
    return monday + FX_WEEKEND_OPEN if closed else None


@cache
def nyse_holidays(year: int) -> frozenset[date]:
    """The NYSE's full-day holidays in ``year`` by its rules, plus the unscheduled closures listed above.

    A holiday on a Sunday is observed on the Monday, one on a Saturday on the Friday, except New Year's Day,
    which is then not observed at all. Juneteenth counts from 2022, when the NYSE first closed for it.
    """
    fixed = [date(year, 7, 4), date(year, 12, 25)] + ([date(year, 6, 19)] if year >= 2022 else [])
    days = {_observed(d) for d in fixed} | {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day: third Monday of January
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday: third Monday of February
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day: last Monday of May
        _nth_weekday(year, 9, 0, 1),  # Labor Day: first Monday of September
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving: fourth Thursday of November
    }
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:
        days.add(_observed(new_year))
    return frozenset(days | {d for d in NYSE_UNSCHEDULED_CLOSURES if d.year == year})


def _observed(day: date) -> date:
    """Saturday holidays are observed on the Friday, Sunday ones on the Monday."""
    return day + timedelta(days={5: -1, 6: 1}.get(day.weekday(), 0))


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)
