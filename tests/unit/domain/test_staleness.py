import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffe.contracts import BarColumns
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.sessions import NEW_YORK
from ffe.domain.staleness import (
    GAP_TOLERANCE_BARS,
    THRESHOLDS,
    GateCode,
    StalenessVerdict,
    assess_staleness,
    assess_staleness_columns,
)

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
MIN_BARS = 5
CRYPTO, FX, EQUITY = AssetClass.CRYPTO, AssetClass.FX, AssetClass.EQUITY
H1, D1 = Timeframe.H1, Timeframe.D1

# docs/decision-cycle.md, The data gate: the limit on the age of the last bar's close, per timeframe.
EXPECTED_LIMIT_MIN = {"1m": 15, "5m": 15, "15m": 30, "30m": 60, "1h": 120, "4h": 120, "1d": None}


def series_closing_at(close: datetime, timeframe: Timeframe, n: int = MIN_BARS) -> list[Bar]:
    step = timeframe.duration
    last_open = close - step
    return [Bar(last_open - (n - 1 - i) * step, 1.0, 1.0, 1.0, 1.0) for i in range(n)]


def bars_at(times: Iterable[datetime]) -> list[Bar]:
    return [Bar(t.astimezone(UTC), 1.0, 1.0, 1.0, 1.0) for t in sorted(times)]


def hours(first: datetime, last: datetime) -> list[datetime]:
    """Every hour from ``first`` to ``last``, both included."""
    return [first + timedelta(hours=i) for i in range(int((last - first) / timedelta(hours=1)) + 1)]


def assess(bars: list[Bar], timeframe: Timeframe, now: datetime, asset_class: AssetClass = CRYPTO, **kw):
    """The verdict on ``bars``, which the same bars as columns (what CheckStaleness reads) get exactly too."""
    verdict = assess_staleness(bars, timeframe, now, MIN_BARS, asset_class=asset_class, **kw)
    assert assess_staleness_columns(BarColumns.of(bars), timeframe, now, MIN_BARS, asset_class=asset_class, **kw) == (
        verdict
    )
    return verdict


def just_after(bars: list[Bar], timeframe: Timeframe = H1) -> datetime:
    """A minute after the last bar closed: fresh by age on every intraday timeframe."""
    return bars[-1].time + timeframe.duration + timedelta(minutes=1)


# --- intraday age ---------------------------------------------------------------------------------------


def test_thresholds_match_the_design_for_every_timeframe() -> None:
    # Given the policy table, Then every timeframe has exactly the documented limit
    assert {str(tf): (None if t is None else t / timedelta(minutes=1)) for tf, t in THRESHOLDS.items()} == (
        EXPECTED_LIMIT_MIN
    )
    assert set(THRESHOLDS) == set(Timeframe)


@pytest.mark.parametrize("timeframe", [tf for tf in Timeframe if THRESHOLDS[tf] is not None], ids=str)
@pytest.mark.parametrize(
    ("offset", "stale"),
    [(timedelta(0), False), (timedelta(seconds=-1), False), (timedelta(seconds=1), True), (timedelta(days=3), True)],
    ids=["at-limit", "just-inside", "just-over", "days-old"],
)
def test_intraday_age_against_limit(timeframe: Timeframe, offset: timedelta, stale: bool) -> None:
    # Given a series whose last bar closed exactly `limit + offset` before now
    limit = THRESHOLDS[timeframe]
    assert limit is not None
    bars = series_closing_at(NOW - limit - offset, timeframe)
    # When the gate judges it
    verdict = assess(bars, timeframe, NOW)
    # Then it is stale exactly when older than the limit, and reports age and threshold
    assert verdict.stale is stale
    assert verdict.code == (GateCode.STALE if stale else GateCode.FRESH)
    assert verdict.reason.startswith("stale data: last bar closed" if stale else "last bar closed")
    assert verdict.age_seconds == pytest.approx((limit + offset).total_seconds())
    assert verdict.threshold_seconds == int(limit.total_seconds())
    assert verdict.last_bar_time == bars[-1].time


@pytest.mark.parametrize(
    ("timeframe", "age_s", "reads"),
    [
        (Timeframe.M1, 901, "last bar closed 901 s ago, limit for 1m is 900 s"),
        (Timeframe.M1, 900.2, "last bar closed 901 s ago, limit for 1m is 900 s"),  # rounded away from the limit
        (Timeframe.H1, 7201, "last bar closed 7201 s ago, limit for 1h is 7200 s"),
        (Timeframe.H1, 7260, "last bar closed 2 h 1 min ago, limit for 1h is 2 h 0 min"),
        (Timeframe.M15, 4 * 3600, "last bar closed 4 h 0 min ago, limit for 15m is 30 min"),
    ],
)
def test_the_stale_reason_never_reads_as_equal_to_its_limit(timeframe: Timeframe, age_s: float, reads: str) -> None:
    # Given a series a little (or a lot) older than its limit
    bars = series_closing_at(NOW - timedelta(seconds=age_s), timeframe)
    # Then the reason shows seconds when minutes would read the same as the limit
    assert assess(bars, timeframe, NOW).reason == f"stale data: {reads}"


@given(
    timeframe=st.sampled_from([tf for tf in Timeframe if THRESHOLDS[tf] is not None]),
    over_ms=st.integers(min_value=1, max_value=3 * 86_400_000),
)
def test_a_stale_age_and_its_limit_always_read_differently(timeframe: Timeframe, over_ms: int) -> None:
    limit = THRESHOLDS[timeframe]
    assert limit is not None
    bars = series_closing_at(NOW - limit - timedelta(milliseconds=over_ms), timeframe)
    reason = assess(bars, timeframe, NOW).reason
    match = re.fullmatch(r"stale data: last bar closed (.+) ago, limit for \S+ is (.+)", reason)
    assert match is not None and match.group(1) != match.group(2)


# --- empty, short, forming ------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", list(Timeframe), ids=str)
def test_empty_series_is_refused_on_every_timeframe(timeframe: Timeframe) -> None:
    verdict = assess([], timeframe, NOW)
    assert verdict.stale is True and verdict.code is GateCode.NO_BARS
    assert verdict.bar_count == 0 and verdict.age_seconds is None and verdict.last_bar_time is None
    assert verdict.reason.startswith("no_bars: ")


@pytest.mark.parametrize("timeframe", list(Timeframe), ids=str)
def test_short_series_is_insufficient_history_on_every_timeframe_even_when_fresh(timeframe: Timeframe) -> None:
    bars = series_closing_at(NOW, timeframe, n=MIN_BARS - 1)
    verdict = assess(bars, timeframe, NOW, history_note="the regime path")
    assert verdict.stale is True and verdict.code is GateCode.INSUFFICIENT_HISTORY
    need = f"at least {MIN_BARS} needed (the regime path)"
    assert verdict.reason == f"insufficient_history: only {MIN_BARS - 1} bars, {need}"


def test_clock_is_injected_not_read() -> None:
    # The same series is fresh at one injected time and stale at a later one.
    bars = series_closing_at(NOW, H1)
    assert not assess(bars, H1, NOW + timedelta(minutes=5)).stale
    assert assess(bars, H1, NOW + timedelta(hours=5)).stale


def test_a_bar_still_forming_is_refused_never_fresh_at_age_zero() -> None:
    # Given the case: at 12:00, a 1h bar that opened at 11:50 (it closes at 12:50)
    bars = series_closing_at(NOW + timedelta(minutes=50), H1)
    assert bars[-1].time == NOW - timedelta(minutes=10)
    # When the gate judges it, Then it is refused and says the bar is still forming
    verdict = assess(bars, H1, NOW)
    assert verdict.stale is True and verdict.code is GateCode.FORMING_BAR
    assert "closes at 2024-03-06T12:50:00+00:00, after 2024-03-06T12:00:00+00:00" in verdict.reason


@given(
    timeframe=st.sampled_from([tf for tf in Timeframe if THRESHOLDS[tf] is not None]),
    n=st.integers(min_value=0, max_value=80),
    extra_age_s=st.integers(min_value=1, max_value=60 * 60 * 24 * 400),
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_no_series_older_than_its_threshold_ever_leaves_the_gate_fresh(
    timeframe: Timeframe, n: int, extra_age_s: int, now: datetime
) -> None:
    limit = THRESHOLDS[timeframe]
    assert limit is not None
    bars = series_closing_at(now - limit - timedelta(seconds=extra_age_s), timeframe, n=n)
    assert assess_staleness(bars, timeframe, now, min_bars=5, asset_class=CRYPTO).stale


@given(
    timeframe=st.sampled_from(list(Timeframe)),
    n=st.integers(min_value=0, max_value=60),
    age_s=st.integers(min_value=0, max_value=60 * 60 * 24 * 10),
)
def test_fresh_verdict_implies_enough_bars_within_the_limit(timeframe: Timeframe, n: int, age_s: int) -> None:
    bars = series_closing_at(NOW - timedelta(seconds=age_s), timeframe, n=n)
    verdict = assess_staleness(bars, timeframe, NOW, 20, asset_class=CRYPTO)
    limit = THRESHOLDS[timeframe]
    if not verdict.stale:
        assert n >= 20 and (limit is None or age_s <= limit.total_seconds())


# --- daily bars: sessions missing since the last bar --------------------------------------------------------


def daily(last: date, n: int = MIN_BARS) -> list[Bar]:
    """``n`` daily bars (00:00 UTC), one a day, the last on ``last``."""
    return bars_at(datetime(last.year, last.month, last.day, tzinfo=UTC) - timedelta(days=i) for i in range(n))


def at(day: date, minute: int = 5) -> datetime:
    """``day`` at 00:05 UTC, when the daily schedule runs."""
    return datetime(day.year, day.month, day.day, 0, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("asset_class", "last", "now", "missing", "stale"),
    [
        # crypto: every day is a session
        (CRYPTO, date(2024, 3, 5), at(date(2024, 3, 6)), 0, False),
        (CRYPTO, date(2024, 3, 2), at(date(2024, 3, 6)), 3, False),  # just inside N=3
        (CRYPTO, date(2024, 3, 1), at(date(2024, 3, 6)), 4, True),  # just outside
        (CRYPTO, date(2023, 1, 31), at(date(2024, 3, 6)), 399, True),  # the 400-day-old daily BUY
        # equities: a weekend is not missing...
        (EQUITY, date(2024, 3, 1), at(date(2024, 3, 4)), 0, False),  # Friday's bar on Monday
        (EQUITY, date(2024, 3, 1), at(date(2024, 3, 7)), 3, False),  # Mon, Tue, Wed
        (EQUITY, date(2024, 3, 1), at(date(2024, 3, 8)), 4, True),  # ... and Thursday
        # ...nor an NYSE holiday: Christmas 2024 is a Wednesday
        (EQUITY, date(2024, 12, 23), at(date(2024, 12, 28)), 3, False),  # Tue 24, Thu 26, Fri 27
        (EQUITY, date(2024, 12, 23), at(date(2024, 12, 31)), 4, True),  # ... and Mon 30
        (EQUITY, date(2024, 11, 27), at(date(2024, 12, 3)), 2, False),  # Thanksgiving Thu 28: Fri 29, Mon 2
        # FX: weekdays, less 25 December and 1 January
        (FX, date(2024, 3, 1), at(date(2024, 3, 4)), 0, False),
        (FX, date(2024, 3, 1), at(date(2024, 3, 8)), 4, True),
        (FX, date(2024, 12, 24), at(date(2025, 1, 2)), 4, True),  # 26, 27, 30, 31 Dec (not the 25th nor the 1st)
        (FX, date(2024, 12, 24), at(date(2024, 12, 31)), 3, False),
    ],
)
def test_daily_series_hold_when_more_than_n_sessions_are_missing(asset_class, last, now, missing, stale) -> None:
    # Given daily bars up to `last`, judged at `now` with the default N=3
    bars = daily(last)
    verdict = assess(bars, D1, now, asset_class)
    # Then the verdict follows the sessions missing, which the reason states, and daily has no age threshold
    assert verdict.stale is stale and verdict.threshold_seconds is None
    noun = "session" if missing == 1 else "sessions"
    assert f"{missing} {asset_class} {noun} missing since" in verdict.reason
    if stale:
        assert verdict.code is GateCode.STALE
        assert verdict.reason.startswith("stale data: daily bars, ") and "more than the 3 allowed" in verdict.reason


@pytest.mark.parametrize(("n_allowed", "stale"), [(0, True), (1, False), (10, False)])
def test_the_daily_allowance_is_configurable(n_allowed: int, stale: bool) -> None:
    # Given a crypto daily series one session behind
    bars = daily(date(2024, 3, 4))
    verdict = assess(bars, D1, at(date(2024, 3, 6)), daily_max_missing_sessions=n_allowed)
    assert verdict.stale is stale


# --- gaps in the bars the model reads ------------------------------------------------------------------------


def test_a_year_old_series_with_one_fresh_bar_is_gappy_data() -> None:
    # Given the case: 119 hourly bars from a year ago plus one fresh bar
    old = series_closing_at(NOW - timedelta(days=365), H1, n=119)
    fresh = series_closing_at(NOW, H1, n=1)
    verdict = assess(old + fresh, H1, NOW + timedelta(minutes=1))
    # Then it is not decided on: the reason names the gap and the tolerance
    assert verdict.stale is True and verdict.code is GateCode.GAPPY_DATA
    assert verdict.reason.startswith(
        f"gappy_data: 8759 expected 1h bars missing between the bars of {old[-1].time.isoformat()} "
        f"and {fresh[0].time.isoformat()} (365 d 0 h apart), tolerance 3 (crypto trades around the clock)"
    )


@pytest.mark.parametrize(("missing", "gappy"), [(0, False), (3, False), (4, True)])
@pytest.mark.parametrize("timeframe", [Timeframe.M1, H1, Timeframe.H4], ids=str)
def test_crypto_tolerates_a_few_missing_bars_at_any_hour(timeframe: Timeframe, missing: int, gappy: bool) -> None:
    # Given a 24/7 series with `missing` bars cut out of its middle (a Sunday: crypto has no weekend)
    bars = series_closing_at(datetime(2024, 3, 10, 12, tzinfo=UTC), timeframe, n=20)
    cut = bars[:8] + bars[8 + missing :]
    verdict = assess(cut, timeframe, just_after(cut, timeframe))
    assert verdict.code is (GateCode.GAPPY_DATA if gappy else GateCode.FRESH)
    assert GAP_TOLERANCE_BARS[CRYPTO] == 3


FRIDAY = datetime(2024, 3, 8, tzinfo=UTC)  # Friday 8 March 2024


@pytest.mark.parametrize(
    ("friday_last", "resume", "gappy"),
    [
        (FRIDAY.replace(hour=20), FRIDAY + timedelta(days=2, hours=22), False),  # winter close to winter open
        (FRIDAY.replace(hour=20), FRIDAY + timedelta(days=2, hours=21), False),  # a Sunday 21:00 bar is welcome
        (FRIDAY.replace(hour=20), FRIDAY + timedelta(days=3, hours=1), False),  # Sun 22, 23, Mon 00: 3 missing
        (FRIDAY.replace(hour=20), FRIDAY + timedelta(days=3, hours=2), True),  # ... and Mon 01: 4
        (FRIDAY.replace(hour=19), FRIDAY + timedelta(days=3, hours=1), True),  # Fri 20:00 counts too: 4
    ],
)
def test_fx_weekends_are_not_gaps(friday_last: datetime, resume: datetime, gappy: bool) -> None:
    # Given hourly FX bars to Friday evening, then again from Sunday or Monday
    bars = bars_at(hours(friday_last - timedelta(hours=10), friday_last) + hours(resume, resume + timedelta(hours=5)))
    verdict = assess(bars, H1, just_after(bars), FX)
    assert verdict.code is (GateCode.GAPPY_DATA if gappy else GateCode.FRESH), verdict.reason
    if gappy:
        assert "tolerance 3 (FX: no bars expected Friday 21:00 to Sunday 22:00 UTC" in verdict.reason


@pytest.mark.parametrize(("hole_hours", "gappy"), [(3, False), (4, True)])
def test_fx_midweek_holes_are_gaps(hole_hours: int, gappy: bool) -> None:
    wednesday = datetime(2024, 3, 6, tzinfo=UTC)
    times = [t for t in hours(wednesday, wednesday + timedelta(hours=12)) if not 3 <= t.hour < 3 + hole_hours]
    bars = bars_at(times)
    assert assess(bars, H1, just_after(bars), FX).code is (GateCode.GAPPY_DATA if gappy else GateCode.FRESH)


def test_fx_christmas_day_is_not_a_gap() -> None:
    # Given the bundled EURUSD history's shape: no bars on 25 December 2017 from 07:00 to 21:00 UTC
    times = hours(datetime(2017, 12, 24, 22, tzinfo=UTC), datetime(2017, 12, 26, 6, tzinfo=UTC))
    bars = bars_at(t for t in times if not (t.day == 25 and 7 <= t.hour <= 21))
    assert assess(bars, H1, just_after(bars), FX).code is GateCode.FRESH


def session_hours(days: Iterable[date], skip: Iterable[datetime] = ()) -> list[datetime]:
    """Hourly equity bars at 10:00-15:00 New York time on each of ``days``, less ``skip``."""
    skipped = set(skip)
    out = [datetime(d.year, d.month, d.day, h, tzinfo=NEW_YORK) for d in days for h in range(10, 16)]
    return [t for t in out if t not in skipped]


def weekdays(first: date, last: date, less: Iterable[date] = ()) -> list[date]:
    every = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [d for d in every if d.weekday() < 5 and d not in set(less)]


def test_equity_nights_weekends_holidays_and_a_clock_change_are_not_gaps() -> None:
    # Given hourly session bars from 4 to 22 March 2024 (US clocks moved on the 10th), and around Good Friday
    march = weekdays(date(2024, 3, 4), date(2024, 3, 22))
    easter = weekdays(date(2024, 3, 25), date(2024, 4, 5), less=[date(2024, 3, 29)])
    for days in (march, easter):
        bars = bars_at(session_hours(days))
        # Then the series is complete: nothing the NYSE trades through is missing
        assert assess(bars, H1, just_after(bars), EQUITY).code is GateCode.FRESH


@pytest.mark.parametrize(("hole", "gappy"), [(range(10, 13), False), (range(10, 14), True), (range(12, 16), True)])
def test_equity_holes_in_a_session_are_gaps(hole: range, gappy: bool) -> None:
    # Given session bars with some hours of Wednesday 13 March missing (3 tolerated, 4 not)
    days = weekdays(date(2024, 3, 11), date(2024, 3, 15))
    bars = bars_at(session_hours(days, skip=[datetime(2024, 3, 13, h, tzinfo=NEW_YORK) for h in hole]))
    verdict = assess(bars, H1, just_after(bars), EQUITY)
    assert verdict.code is (GateCode.GAPPY_DATA if gappy else GateCode.FRESH)


def test_a_missing_equity_session_day_is_a_gap_but_a_holiday_is_not() -> None:
    # Given hourly session bars around Thanksgiving 2024 (Thursday 28 November, an NYSE holiday) without the
    # Friday after it, a trading day
    days = weekdays(date(2024, 11, 18), date(2024, 11, 27)) + weekdays(date(2024, 12, 2), date(2024, 12, 4))
    bars = bars_at(session_hours(days))
    verdict = assess(bars, H1, just_after(bars), EQUITY)
    # Then Friday's six session hours are missing, a gap; Thursday's are not counted (that would be 12)
    assert verdict.code is GateCode.GAPPY_DATA and verdict.reason.startswith("gappy_data: 6 expected 1h bars missing")


@pytest.mark.parametrize(("missing", "gappy"), [(3, False), (4, True)])
def test_daily_gaps_count_sessions(missing: int, gappy: bool) -> None:
    # Given NYSE daily bars over Christmas 2024 with `missing` sessions cut after the 20th
    holidays = [date(2024, 12, 25), date(2025, 1, 1), date(2025, 1, 9)]
    days = weekdays(date(2024, 12, 2), date(2025, 1, 10), less=holidays)
    cut = days[:14] + days[14 + missing :]
    bars = bars_at(datetime(d.year, d.month, d.day, tzinfo=UTC) for d in cut)
    verdict = assess(bars, D1, at(date(2025, 1, 11)), EQUITY)
    assert verdict.code is (GateCode.GAPPY_DATA if gappy else GateCode.FRESH), verdict.reason
    if gappy:
        assert verdict.reason.startswith(f"gappy_data: {missing} expected sessions missing")


def test_the_most_recent_gap_is_reported() -> None:
    # Given two holes, 5 bars and then 10 bars wide
    bars = series_closing_at(NOW, H1, n=40)
    cut = bars[:5] + bars[10:20] + bars[30:]
    verdict = assess(cut, H1, NOW)
    assert verdict.reason.startswith(
        f"gappy_data: 10 expected 1h bars missing between the bars of {bars[19].time.isoformat()}"
    )


# --- the bars as columns (CheckStaleness's entry point) -------------------------------------------------------


@given(
    timeframe=st.sampled_from(list(Timeframe)),
    asset_class=st.sampled_from(list(AssetClass)),
    first=st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    steps=st.lists(st.integers(min_value=-3, max_value=60 * 60 * 24 * 12), max_size=40),
    micro=st.booleans(),
    now_after_s=st.integers(min_value=-60 * 60 * 24, max_value=60 * 60 * 24 * 8),
    min_bars=st.integers(min_value=0, max_value=30),
)
def test_columns_get_the_same_verdict_as_the_bars(
    timeframe: Timeframe,
    asset_class: AssetClass,
    first: datetime,
    steps: list[int],
    micro: bool,
    now_after_s: int,
    min_bars: int,
) -> None:
    # Given any series (gaps of any size, out of order, with or without sub-second open times)
    times = [first.replace(microsecond=0) if not micro else first]
    for k, step in enumerate(steps):
        times.append(times[-1] + timedelta(seconds=step, microseconds=(k * 7919) % 1_000_000 if micro else 0))
    bars = [Bar(t, 1.0, 1.0, 1.0, 1.0) for t in times]
    now = times[-1] + timedelta(seconds=now_after_s)
    # Then the columns' verdict is the bars', field for field (reason text, instants, ages)
    expected: StalenessVerdict = assess_staleness(bars, timeframe, now, min_bars, asset_class=asset_class)
    got = assess_staleness_columns(BarColumns.of(bars), timeframe, now, min_bars, asset_class=asset_class)
    assert got == expected
    assert got.last_bar_time is not None and got.last_bar_time.tzinfo is UTC


def test_columns_of_no_bars_are_no_bars() -> None:
    verdict = assess_staleness_columns(BarColumns.of([]), H1, NOW, MIN_BARS, asset_class=CRYPTO)
    assert verdict == assess_staleness([], H1, NOW, MIN_BARS, asset_class=CRYPTO) and verdict.code is GateCode.NO_BARS
