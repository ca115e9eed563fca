"""The trading calendars the gate counts expected bars with, against published calendars and real bundled data."""

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.adapters.replay import datasets, load_bars
from ffe.domain.models import AssetClass, Timeframe
from ffe.domain.sessions import expected_bars, expects_bar, is_session_day, nyse_holidays
from ffe.domain.staleness import GAP_TOLERANCE_BARS
from ffe.domain.universe import asset_class_of

CRYPTO, FX, EQUITY = AssetClass.CRYPTO, AssetClass.FX, AssetClass.EQUITY
H1 = Timeframe.H1

# The NYSE's published full-day closures.
NYSE_2024 = ["01-01", "01-15", "02-19", "03-29", "05-27", "06-19", "07-04", "09-02", "11-28", "12-25"]
NYSE_2025 = ["01-01", "01-09", "01-20", "02-17", "04-18", "05-26", "06-19", "07-04", "09-01", "11-27", "12-25"]
NYSE_2026 = ["01-01", "01-19", "02-16", "04-03", "05-25", "06-19", "07-03", "09-07", "11-26", "12-25"]


@pytest.mark.parametrize(("year", "published"), [(2024, NYSE_2024), (2025, NYSE_2025), (2026, NYSE_2026)])
def test_nyse_holidays_match_the_published_calendar(year: int, published: list[str]) -> None:
    assert sorted(nyse_holidays(year)) == [date.fromisoformat(f"{year}-{md}") for md in published]


def test_new_years_day_on_a_saturday_is_not_observed_on_the_friday() -> None:
    # 1 January 2022 was a Saturday; the NYSE traded on Friday 31 December 2021
    assert is_session_day(EQUITY, date(2021, 12, 31)) and date(2021, 12, 31) not in nyse_holidays(2021)
    assert date(2021, 12, 31) not in nyse_holidays(2022)


def test_the_nyse_calendar_matches_twenty_years_of_bundled_sp500_sessions() -> None:
    # Given the bundled S&P 500 daily history (1999-2018): one bar per NYSE session
    bars = load_bars(datasets()["SPX"].file)
    traded = {b.time.date() for b in bars}
    first, last = bars[0].time.date(), bars[-1].time.date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    # Then the calendar's session days are exactly the days with a bar (holidays, 9/11, Sandy, funerals)
    assert {d for d in days if is_session_day(EQUITY, d)} == traded


@pytest.mark.parametrize("symbol", ["BTCUSD", "ETHUSD", "EURUSD"])
def test_the_bundled_real_hourly_series_have_no_gap_beyond_their_class_tolerance(symbol: str) -> None:
    # The rule holds real data decidable: no neighbouring bars miss more expected bars than tolerated
    asset_class = asset_class_of(symbol)
    bars = load_bars(datasets()[symbol].file)
    pairs = itertools.pairwise(bars)
    worst = max(expected_bars(asset_class, H1, a.time + H1.duration, b.time, 10_000) for a, b in pairs)
    assert worst <= GAP_TOLERANCE_BARS[asset_class]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        ("2024-03-08T20:00", True),  # Friday 20:00-21:00: the last hour before the weekend
        ("2024-03-08T21:00", False),  # Friday 21:00: closed in summer, and left out in winter too
        ("2024-03-09T12:00", False),  # Saturday
        ("2024-03-10T21:00", False),  # Sunday 21:00: open in summer, but left out
        ("2024-03-10T22:00", True),  # Sunday 22:00: open in both seasons
        ("2024-12-25T12:00", False),  # Christmas Day
        ("2024-12-24T12:00", True),
    ],
)
def test_fx_hours(utc: str, expected: bool) -> None:
    assert expects_bar(FX, H1, datetime.fromisoformat(utc).replace(tzinfo=UTC)) is expected


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        ("2024-03-08T14:00", False),  # 09:00-10:00 New York (EST): starts before the 09:30 open
        ("2024-03-08T15:00", True),  # 10:00-11:00 EST
        ("2024-03-08T20:00", True),  # 15:00-16:00 EST: the last session hour
        ("2024-03-08T21:00", False),  # 16:00 EST: closed
        ("2024-03-11T14:00", True),  # 10:00 EDT: after the clocks moved, the same hour is an hour earlier in UTC
        ("2024-03-11T20:00", False),  # 16:00 EDT: closed
        ("2024-03-29T15:00", False),  # Good Friday
        ("2024-03-09T15:00", False),  # Saturday
    ],
)
def test_equity_session_hours(utc: str, expected: bool) -> None:
    assert expects_bar(EQUITY, H1, datetime.fromisoformat(utc).replace(tzinfo=UTC)) is expected


def test_expected_bars_stop_counting_at_the_cap() -> None:
    start = datetime(2000, 1, 3, tzinfo=UTC)
    assert expected_bars(FX, Timeframe.M1, start, start + timedelta(days=3650), cap=50) == 50
    assert expected_bars(CRYPTO, H1, start, start + timedelta(hours=10), cap=50) == 10
    assert expected_bars(CRYPTO, H1, start, start - timedelta(hours=10), cap=50) == 0


def _counted_slot_by_slot(
    asset_class: AssetClass, timeframe: Timeframe, after: datetime, until: datetime, cap: int
) -> int:
    """expected_bars by its definition: every slot asked of expects_bar (what it counts, without skipping any)."""
    slots = max(0, (until - after) // timeframe.duration)
    found = 0
    for k in range(slots):
        found += expects_bar(asset_class, timeframe, after + k * timeframe.duration)
        if found >= cap:
            break
    return found


@settings(max_examples=400, deadline=None)
@given(
    after=st.datetimes(datetime(2016, 12, 20), datetime(2018, 1, 10), timezones=st.just(UTC)),
    span=st.timedeltas(timedelta(0), timedelta(days=20)),
    timeframe=st.sampled_from([t for t in Timeframe if not t.is_daily]),
    cap=st.sampled_from([1, 3, 4, 10_000]),
)
def test_fx_counting_skips_the_weekend_and_counts_the_same(
    after: datetime, span: timedelta, timeframe: Timeframe, cap: int
) -> None:
    # Christmas, New Year and every weekend of a year, at any minute (slots need not open on the hour)
    until = after + span
    assert expected_bars(FX, timeframe, after, until, cap) == _counted_slot_by_slot(FX, timeframe, after, until, cap)
