import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.domain import series
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar, Timeframe
from ffe.domain.series import validate_columns, validate_series

NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)


def good(n: int = 4) -> list[Bar]:
    return [Bar(NOW - timedelta(hours=n - i), 1.1, 1.2, 1.0, 1.15, 5) for i in range(n)]


def test_good_series_and_empty_series_pass() -> None:
    validate_series(good(), NOW)
    validate_series([], NOW)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: [*b[:2], replace(b[2], close=math.nan), *b[3:]], "close is not a finite number"),
        (lambda b: [*b[:2], replace(b[2], open=math.inf, high=math.inf), *b[3:]], "open is not a finite number"),
        (lambda b: [*b[:1], replace(b[1], low=-1.0), *b[2:]], "low must be positive"),
        (lambda b: [*b[:1], replace(b[1], open=0.0, low=0.0), *b[2:]], "open must be positive"),
        (lambda b: [*b[:1], replace(b[1], volume=-3), *b[2:]], "volume must be a finite number >= 0"),
        (lambda b: [*b[:1], replace(b[1], high=1.0), *b[2:]], "high/low do not bracket"),
        (lambda b: [*b, replace(b[-1])], "duplicated timestamp"),
        (lambda b: [b[1], b[0], *b[2:]], "out of order"),
        (lambda b: [*b, replace(b[-1], time=NOW + timedelta(hours=1))], "in the future"),
        (lambda b: [replace(b[0], time=b[0].time.replace(tzinfo=None)), *b[1:]], "no timezone"),
    ],
    ids=[
        "nan",
        "inf",
        "negative",
        "zero",
        "negative-volume",
        "bad-high",
        "duplicate",
        "out-of-order",
        "future",
        "naive",
    ],
)
def test_bad_series_is_rejected_with_a_clear_message(mutate, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        validate_series(mutate(good()), NOW)
    with pytest.raises(InvalidInputError, match=message):  # the same bars as columns (FetchMarketData's)
        validate_columns(*_columns(mutate(good())), NOW)


def test_with_its_timeframe_a_bar_still_forming_is_rejected() -> None:
    # Given hourly bars whose last one opened at 11:50 and so closes at 12:50, after NOW (12:00)
    bars = [Bar(NOW - timedelta(minutes=10) - timedelta(hours=3 - i), 1.1, 1.2, 1.0, 1.15, 5) for i in range(4)]
    # Then without the timeframe it passes (its open is not in the future); with it, it is refused by name
    validate_series(bars, NOW)
    with pytest.raises(InvalidInputError, match=r"bar 3 \(2024-01-01T11:50:00\+00:00\): still forming at .*closes"):
        validate_series(bars, NOW, Timeframe.H1)
    validate_series(bars[:-1], NOW, Timeframe.H1)  # the bar that closed at 11:50 is complete


_PRICES = st.one_of(
    st.floats(0.5, 2.0), st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf, 1e-300, 1e300]), st.just(1)
)


@st.composite
def _series(draw: st.DrawFn) -> tuple[list[Bar], Timeframe | None]:
    """Mostly sound hourly series, with any of the rules broken here and there."""
    n = draw(st.integers(0, 12))
    odd = st.sampled_from([0, -3600, 1800, 1])
    steps = draw(st.lists(st.one_of(*[st.just(3600)] * 12, odd), min_size=n, max_size=n))
    start = NOW - timedelta(hours=n + draw(st.integers(-2, 2)))
    bars, t = [], start
    for i in range(n):
        t = t + timedelta(seconds=steps[i])
        o, c = draw(st.floats(1.0, 1.5)), draw(st.floats(1.0, 1.5))
        high = max(o, c) + draw(st.sampled_from([0.0, 0.1] * 12 + [-0.01]))
        low = min(o, c) - draw(st.sampled_from([0.0, 0.1] * 12 + [-0.01]))
        if draw(st.integers(0, 30)) == 0:  # one broken price or volume
            field = draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
            o, high, low, c = (
                draw(_PRICES) if field == f else v for f, v in zip(FIELDS, (o, high, low, c), strict=True)
            )
            volume = draw(_PRICES) if field == "volume" else 5.0
        else:
            volume = 5.0
        when = t.replace(tzinfo=None) if draw(st.integers(0, 60)) == 0 else t
        bars.append(Bar(when, o, high, low, c, volume))
    return bars, draw(st.sampled_from([None, Timeframe.H1, Timeframe.M15]))


FIELDS = ("open", "high", "low", "close")


def _outcome(bars: list[Bar], timeframe: Timeframe | None) -> str:
    try:
        validate_series(bars, NOW, timeframe)
    except (InvalidInputError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


@settings(max_examples=400, deadline=None)
@given(case=_series())
def test_the_quick_check_never_passes_what_the_walk_refuses(case: tuple[list[Bar], Timeframe | None]) -> None:
    # validate_series recognises a sound series at once; the bar-by-bar walk is the rule, and names the first fault.
    bars, timeframe = case
    quick = _outcome(bars, timeframe)
    with patch.object(series, "_plainly_sound", return_value=False):
        walked = _outcome(bars, timeframe)
    assert quick == walked


def _columns(
    bars: list[Bar],
) -> tuple[list[datetime], list[float], list[float], list[float], list[float], list[float]]:
    prices = ([getattr(bar, name) for bar in bars] for name in ("open", "high", "low", "close", "volume"))
    return ([bar.time for bar in bars], *prices)  # type: ignore[return-value]


def _columns_outcome(bars: list[Bar], timeframe: Timeframe | None) -> str:
    try:
        validate_columns(*_columns(bars), NOW, timeframe)
    except (InvalidInputError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


@settings(max_examples=400, deadline=None)
@given(case=_series())
def test_the_columns_are_validated_as_the_bars(case: tuple[list[Bar], Timeframe | None]) -> None:
    # validate_columns (FetchMarketData's) passes what validate_series passes and refuses the rest in its words
    bars, timeframe = case
    assert _columns_outcome(bars, timeframe) == _outcome(bars, timeframe)


def test_empty_columns_pass() -> None:
    validate_columns([], [], [], [], [], [], NOW, Timeframe.H1)
