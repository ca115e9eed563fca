"""Validation of a bar series before anything is decided on it."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from datetime import datetime
from itertools import chain, repeat

from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar, BarLike, Timeframe

_PRICES = operator.attrgetter("open", "high", "low", "close", "volume")


def validate_series(bars: Sequence[BarLike], now: datetime, timeframe: Timeframe | None = None) -> None:
    """Reject a series no decision may be made on.

    An empty series is *valid* here: emptiness is a staleness question, not a format error. With
    ``timeframe``, every bar must also have closed (open + timeframe) by ``now``: a bar still forming is
    refused, not decided on.

    A sound series is recognised at once (:func:`_plainly_sound`); any other is walked bar by bar, and the
    first bar that breaks a rule names it.

    Raises:
        InvalidInputError: naive or future timestamps, a bar still forming (with ``timeframe``), duplicated
            or out-of-order times, non-finite / zero / negative prices, negative volume, or high/low not
            bracketing the bar.
    """
    if _plainly_sound(bars, now, timeframe):
        return
    previous: datetime | None = None
    for i, bar in enumerate(bars):
        where = f"bar {i} ({bar.time.isoformat()})"
        if bar.time.tzinfo is None or bar.time.utcoffset() is None:
            raise InvalidInputError(f"{where}: timestamp has no timezone; bars must be UTC")
        if bar.time > now:
            raise InvalidInputError(f"{where}: timestamp is in the future of {now.isoformat()}")
        if timeframe is not None and bar.time + timeframe.duration > now:
            close = (bar.time + timeframe.duration).isoformat()
            raise InvalidInputError(f"{where}: still forming at {now.isoformat()} (a {timeframe} bar closes {close})")
        if previous is not None:
            if bar.time == previous:
                raise InvalidInputError(f"{where}: duplicated timestamp")
            if bar.time < previous:
                raise InvalidInputError(f"{where}: out of order after {previous.isoformat()}")
        previous = bar.time
        _check_prices(bar, where)


def _plainly_sound(bars: Sequence[BarLike], now: datetime, timeframe: Timeframe | None) -> bool:
    """True only when the walk of :func:`validate_series` would find nothing wrong: its rules, with its own
    comparisons, over all the bars at once (C-level ``map``s instead of a Python loop). Anything else answers False
    and the walk names what is wrong; so does anything unusual (a naive time, an overflow, a price that is not a
    number). No numpy: this module is imported by the contracts, and so by every Lambda.
    """
    if not bars:
        return True
    try:
        times = [bar.time for bar in bars]
        o, h, lo, c, v = zip(*map(_PRICES, bars), strict=True)
    except Exception:  # whatever it is, the walk raises it where it meets it
        return False
    return _columns_sound(times, o, h, lo, c, v, now, timeframe)


def validate_columns(
    times: Sequence[datetime],
    opens: Sequence[float],
    highs: Sequence[float],
    lows: Sequence[float],
    closes: Sequence[float],
    volumes: Sequence[float],
    now: datetime,
    timeframe: Timeframe | None = None,
) -> None:
    """:func:`validate_series` of the bars these columns hold (bar ``i`` at index ``i`` of each): the same rules
    and, for a series they refuse, the same message (the bars are then built and walked).

    Raises:
        InvalidInputError: as :func:`validate_series`.
    """
    if times and _columns_sound(times, opens, highs, lows, closes, volumes, now, timeframe):
        return
    validate_series(list(map(Bar, times, opens, highs, lows, closes, volumes)), now, timeframe)


def _columns_sound(
    times: Sequence[datetime],
    o: Sequence[float],
    h: Sequence[float],
    lo: Sequence[float],
    c: Sequence[float],
    v: Sequence[float],
    now: datetime,
    timeframe: Timeframe | None,
) -> bool:
    """:func:`_plainly_sound` over the columns of a series of at least one bar."""
    try:
        first = times[0]
        if first.tzinfo is None or first.utcoffset() is None:
            return False
        # Strictly increasing (no duplicate, none out of order); a naive time cannot be compared with an aware one
        # (TypeError), so every time is aware like the first.
        if not all(map(operator.lt, times, times[1:])) or any(map(operator.gt, times, repeat(now))):
            return False
        if timeframe is not None:
            closes_at = map(operator.add, times, repeat(timeframe.duration))
            if any(map(operator.gt, closes_at, repeat(now))):
                return False
        if not len(o) == len(h) == len(lo) == len(c) == len(v) == len(times):
            return False
        return (
            all(map(math.isfinite, chain(o, h, lo, c, v)))
            and min(min(o), min(h), min(lo), min(c)) > 0
            and min(v) >= 0
            and all(map(operator.ge, h, map(max, o, c)))
            and all(map(operator.le, lo, map(min, o, c)))
        )
    except Exception:  # whatever it is, the walk raises it where it meets it
        return False


def _check_prices(bar: BarLike, where: str) -> None:
    for name in ("open", "high", "low", "close"):
        value = getattr(bar, name)
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {name} is not a finite number ({value})")
        if value <= 0:
            raise InvalidInputError(f"{where}: {name} must be positive, got {value}")
    if not math.isfinite(bar.volume) or bar.volume < 0:
        raise InvalidInputError(f"{where}: volume must be a finite number >= 0, got {bar.volume}")
    if bar.high < max(bar.open, bar.close) or bar.low > min(bar.open, bar.close):
        raise InvalidInputError(
            f"{where}: high/low do not bracket open/close (o={bar.open} h={bar.high} l={bar.low} c={bar.close})"
        )
