import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar, Timeframe
from ffe.domain.series import validate_series

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


def test_with_its_timeframe_a_bar_still_forming_is_rejected() -> None:
    # Given hourly bars whose last one opened at 11:50 and so closes at 12:50, after NOW (12:00)
    bars = [Bar(NOW - timedelta(minutes=10) - timedelta(hours=3 - i), 1.1, 1.2, 1.0, 1.15, 5) for i in range(4)]
    # Then without the timeframe it passes (its open is not in the future); with it, it is refused by name
    validate_series(bars, NOW)
    with pytest.raises(InvalidInputError, match=r"bar 3 \(2024-01-01T11:50:00\+00:00\): still forming at .*closes"):
        validate_series(bars, NOW, Timeframe.H1)
    validate_series(bars[:-1], NOW, Timeframe.H1)  # the bar that closed at 11:50 is complete
