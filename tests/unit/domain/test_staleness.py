from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffe.domain.models import Bar, Timeframe
from ffe.domain.staleness import THRESHOLDS, assess_staleness

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
MIN_BARS = 5

# DESIGN.md §2, verbatim: the limit on the age of the last bar's close, per timeframe.
EXPECTED_LIMIT_MIN = {"1m": 15, "5m": 15, "15m": 30, "30m": 60, "1h": 120, "4h": 120, "1d": None}


def series_closing_at(close: datetime, timeframe: Timeframe, n: int = MIN_BARS) -> list[Bar]:
    step = timeframe.duration
    last_open = close - step
    return [Bar(last_open - (n - 1 - i) * step, 1.0, 1.0, 1.0, 1.0) for i in range(n)]


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
    verdict = assess_staleness(bars, timeframe, NOW, MIN_BARS)
    # Then it is stale exactly when older than the limit, and reports age and threshold
    assert verdict.stale is stale
    assert verdict.age_seconds == pytest.approx((limit + offset).total_seconds())
    assert verdict.threshold_seconds == int(limit.total_seconds())
    assert verdict.last_bar_time == bars[-1].time


def test_daily_has_no_age_limit() -> None:
    bars = series_closing_at(NOW - timedelta(days=40), Timeframe.D1)
    verdict = assess_staleness(bars, Timeframe.D1, NOW, MIN_BARS)
    assert verdict.stale is False
    assert verdict.threshold_seconds is None
    assert verdict.age_seconds == pytest.approx(timedelta(days=40).total_seconds())


@pytest.mark.parametrize("timeframe", list(Timeframe), ids=str)
def test_empty_series_is_stale_on_every_timeframe(timeframe: Timeframe) -> None:
    verdict = assess_staleness([], timeframe, NOW, MIN_BARS)
    assert verdict.stale is True
    assert verdict.bar_count == 0 and verdict.age_seconds is None and verdict.last_bar_time is None
    assert "no bars" in verdict.reason


@pytest.mark.parametrize("timeframe", list(Timeframe), ids=str)
def test_short_series_is_stale_on_every_timeframe_even_when_fresh(timeframe: Timeframe) -> None:
    bars = series_closing_at(NOW, timeframe, n=MIN_BARS - 1)
    verdict = assess_staleness(bars, timeframe, NOW, MIN_BARS)
    assert verdict.stale is True
    assert f"only {MIN_BARS - 1} bars" in verdict.reason


def test_clock_is_injected_not_read() -> None:
    # The same series is fresh at one injected time and stale at a later one.
    bars = series_closing_at(NOW, Timeframe.H1)
    assert not assess_staleness(bars, Timeframe.H1, NOW + timedelta(minutes=5), MIN_BARS).stale
    assert assess_staleness(bars, Timeframe.H1, NOW + timedelta(hours=5), MIN_BARS).stale


def test_in_progress_bar_counts_as_fresh_not_negative_age() -> None:
    bars = series_closing_at(NOW + timedelta(minutes=30), Timeframe.H1)
    verdict = assess_staleness(bars, Timeframe.H1, NOW, MIN_BARS)
    assert verdict.stale is False and verdict.age_seconds == 0.0


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
    assert assess_staleness(bars, timeframe, now, min_bars=5).stale


@given(
    timeframe=st.sampled_from(list(Timeframe)),
    n=st.integers(min_value=0, max_value=60),
    age_s=st.integers(min_value=0, max_value=60 * 60 * 24 * 10),
)
def test_fresh_verdict_implies_enough_bars_within_the_limit(timeframe: Timeframe, n: int, age_s: int) -> None:
    verdict = assess_staleness(series_closing_at(NOW - timedelta(seconds=age_s), timeframe, n=n), timeframe, NOW, 20)
    limit = THRESHOLDS[timeframe]
    if not verdict.stale:
        assert n >= 20 and (limit is None or age_s <= limit.total_seconds())
