"""Validation of a bar series before anything is decided on it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar, Timeframe


def validate_series(bars: Sequence[Bar], now: datetime, timeframe: Timeframe | None = None) -> None:
    """Reject a series no decision may be made on.

    An empty series is *valid* here: emptiness is a staleness question, not a format error. With
    ``timeframe``, every bar must also have closed (open + timeframe) by ``now``: a bar still forming is
    refused, not decided on.

    Raises:
        InvalidInputError: naive or future timestamps, a bar still forming (with ``timeframe``), duplicated
            or out-of-order times, non-finite / zero / negative prices, negative volume, or high/low not
            bracketing the bar.
    """
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


def _check_prices(bar: Bar, where: str) -> None:
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
