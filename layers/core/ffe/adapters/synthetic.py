"""Seeded synthetic price series for assets with no real bundled data.

The log price is a deterministic function of time (a few slow waves plus per-bar noise drawn from a
hash of seed and bar index), so any window can be produced in O(window) for any ``as_of`` and is the
same on every machine. The output is always labelled synthetic.
"""

from __future__ import annotations

import hashlib
import math
import struct
from datetime import UTC, datetime, timedelta

from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.universe import asset_class_of

EPOCH = datetime(2015, 1, 1, tzinfo=UTC)
FRIDAY_CLOSE = 4 * 24 + 21  # FX closes Friday 21:00 UTC ...
SUNDAY_OPEN = 6 * 24 + 21  # ... and reopens Sunday 21:00 UTC (hours since Monday 00:00)

# Anchor prices so synthetic series look like their instruments (and sizing tests meet real magnitudes).
ANCHORS: dict[str, float] = {"BTCUSD": 9000.0, "ETHUSD": 250.0, "EURUSD": 1.12, "GBPUSD": 1.28}
_WAVES = ((3.0, 0.06), (17.0, 0.10), (61.0, 0.18))  # (period in days, amplitude in log price)


def synthetic_bars(asset: str, timeframe: Timeframe, as_of: datetime, lookback: int) -> list[Bar]:
    """The last ``lookback`` completed bars of the synthetic ``asset`` at ``as_of``.

    FX series keep the real market's hours: no bars from Friday 21:00 to Sunday 21:00 UTC.
    """
    step = timeframe.duration
    anchor = ANCHORS.get(asset, 100.0)
    vol = _per_bar_vol(asset, step)
    fx = asset_class_of(asset) is AssetClass.FX
    bars: list[Bar] = []
    i = int((as_of - EPOCH) / step) - 1  # bars [0, i] have closed by as_of
    while i >= 0 and len(bars) < lookback:
        start = EPOCH + i * step
        if not (fx and _fx_closed(start)):
            bars.append(_bar(asset, i, start, step, anchor, vol))
        i -= 1
    return bars[::-1]


def _fx_closed(t: datetime) -> bool:
    hours_into_week = t.weekday() * 24 + t.hour  # Monday 00:00 = 0
    return FRIDAY_CLOSE <= hours_into_week < SUNDAY_OPEN


def _per_bar_vol(asset: str, step: timedelta) -> float:
    daily = 0.035 if asset in ("BTCUSD", "ETHUSD") else 0.006
    return daily * math.sqrt(step / timedelta(days=1))


def _log_price(asset: str, t: datetime, anchor: float) -> float:
    days = (t - EPOCH) / timedelta(days=1)
    phase = _uniform(asset, -1, 0) * 2 * math.pi
    drift = sum(amp * math.sin(2 * math.pi * days / period + phase * k) for k, (period, amp) in enumerate(_WAVES, 1))
    return math.log(anchor) + drift


def _bar(asset: str, i: int, start: datetime, step: timedelta, anchor: float, vol: float) -> Bar:
    open_ = math.exp(_log_price(asset, start, anchor) + vol * _gauss(asset, i))
    close = math.exp(_log_price(asset, start + step, anchor) + vol * _gauss(asset, i + 1))
    wick = vol * abs(_gauss(asset, -i - 2))
    high = max(open_, close) * math.exp(wick)
    low = min(open_, close) * math.exp(-wick)
    volume = round(1000 * (1 + abs(_gauss(asset, 10_000_000 + i))), 2)
    return Bar(start, open_, high, low, close, volume)


def _uniform(asset: str, i: int, lane: int) -> float:
    digest = hashlib.blake2b(f"{asset}:{i}:{lane}".encode(), digest_size=8).digest()
    return (struct.unpack(">Q", digest)[0] + 0.5) / 2**64


def _gauss(asset: str, i: int) -> float:
    u1, u2 = _uniform(asset, i, 1), _uniform(asset, i, 2)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)
