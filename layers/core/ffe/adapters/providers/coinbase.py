"""Coinbase Exchange: public crypto candles, no API key.

Endpoint (https://docs.cdp.coinbase.com/api-reference/exchange-api/rest-api/products/get-product-candles):
``GET https://api.exchange.coinbase.com/products/{product_id}/candles?granularity=G&start=ISO&end=ISO``
answers a JSON array of ``[time, low, high, open, close, volume]`` rows, ``time`` being the bucket start in
Unix seconds, newest first. ``granularity`` is one of 60, 300, 900, 3600, 21600 or 86400 seconds; a request
whose range holds more than 300 buckets is rejected, and rows may precede ``start``. Errors are
``{"message": "..."}`` (404 ``NotFound`` for an unknown product, 400 for a bad granularity or range).

``end`` is inclusive (ccxt's ``coinbaseexchange`` asks for ``start + (limit - 1) * granularity`` to get
``limit`` candles), so one page of 300 buckets starting at ``s`` asks for ``[s, s + 299 * granularity]``.
30m and 4h have no granularity: they are fetched as 15m / 1h candles and merged, whole buckets only.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ffe.adapters.providers.base import Call, get_json, parse_price, split_pair
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.resample import resample
from ffe.domain.universe import ASSET_CLASSES

BASE_URL = "https://api.exchange.coinbase.com"
MAX_CANDLES = 300  # per request, and the size of the "most recent page" when no start is given
GRANULARITY = {
    Timeframe.M1: 60,
    Timeframe.M5: 300,
    Timeframe.M15: 900,
    Timeframe.H1: 3600,
    Timeframe.D1: 86400,
}
FETCHED_AS = {Timeframe.M30: Timeframe.M15, Timeframe.H4: Timeframe.H1}  # no native granularity: merge finer
_ROW = ("time", "low", "high", "open", "close", "volume")


class CoinbaseProvider:
    name = "coinbase"

    def __init__(self, client: httpx.Client, base_url: str = BASE_URL) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")

    def supports(self, asset_class: AssetClass) -> bool:
        return asset_class is AssetClass.CRYPTO

    def candles(
        self,
        asset: str,
        timeframe: Timeframe,
        start: datetime | None,
        end: datetime,
        asset_class: AssetClass | None = None,
    ) -> list[Bar]:
        """Bars opening in [start, end), oldest first; ``start=None`` gives the last 300 bars up to ``end``.

        Native granularities include the bar still in progress at ``end`` (the router drops it); merged
        timeframes (30m, 4h) only ever contain whole buckets.
        """
        call = Call(self.name, asset, timeframe)
        self._check_asset(call)
        _check_aware(call, start, end)
        fetched_as = FETCHED_AS.get(timeframe, timeframe)
        step = GRANULARITY[fetched_as]
        width = int(timeframe.duration.total_seconds())
        merged = fetched_as is not timeframe
        # Buckets are aligned to the epoch; ``stop`` is the first bucket start that is not wanted.
        stop = _floor(end, width) if merged else _ceil(end, width)
        first = stop - MAX_CANDLES * width if start is None else _ceil(start, width)
        if first >= stop:
            return []
        url = f"{self._base_url}/products/{_product(call)}/candles"
        by_time: dict[datetime, Bar] = {}
        for page in range(first, stop, MAX_CANDLES * step):
            last = min(page + MAX_CANDLES * step, stop) - step  # inclusive: at most 300 buckets per request
            params = {"granularity": str(step), "start": _iso(page), "end": _iso(last)}
            body, response = get_json(self._client, call, url, params=params)
            by_time.update((bar.time, bar) for bar in _bars(body, call, response))
        bars = sorted(by_time.values(), key=lambda bar: bar.time)
        if merged:
            bars = resample(bars, timeframe, as_of=end)
        lower = datetime.fromtimestamp(first, UTC)
        return [bar for bar in bars if lower <= bar.time < end]

    def probe(self) -> None:
        """One 1-minute candle of BTC-USD: public, so it proves connectivity and the wire format only."""
        call = Call(self.name, "BTCUSD", Timeframe.M1)
        minute = _floor(datetime.now(UTC), 60) - 60
        params = {"granularity": "60", "start": _iso(minute), "end": _iso(minute)}
        body, response = get_json(self._client, call, f"{self._base_url}/products/BTC-USD/candles", params=params)
        _bars(body, call, response)

    def _check_asset(self, call: Call) -> None:
        # Symbols outside the universe go to the venue, which answers 404 NotFound for what it does not list.
        asset_class = ASSET_CLASSES.get(call.asset or "")
        if asset_class is not None and not self.supports(asset_class):
            raise InvalidInputError(
                f"{self.name} serves crypto only, not {asset_class} ({call.asset})", **call.context()
            )


def _product(call: Call) -> str:
    """'BTCUSD' -> 'BTC-USD'."""
    try:
        return "-".join(split_pair(call.asset or ""))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{call.provider}: {call.asset!r} is not a currency pair", **call.context()) from exc


def _bars(body: Any, call: Call, response: httpx.Response) -> list[Bar]:
    if not isinstance(body, list):
        raise InvalidInputError(
            f"{call.provider} sent {type(body).__name__} where an array of candles was expected",
            **call.context(response),
        )
    bars = []
    for index, row in enumerate(body):
        try:
            bars.append(_bar(row, call))
        except (InvalidInputError, OverflowError, OSError) as exc:
            raise InvalidInputError(
                f"{call.provider} sent a malformed candle at index {index}: {str(row)[:120]}", **call.context(response)
            ) from exc
    return bars


def _bar(row: Any, call: Call) -> Bar:
    if not isinstance(row, list) or len(row) != len(_ROW):
        raise InvalidInputError(f"expected [{', '.join(_ROW)}], got {type(row).__name__} of {_size(row)}")
    time, low, high, open_, close, volume = (
        parse_price(value, field, call) for value, field in zip(row, _ROW, strict=True)
    )
    if not all(math.isfinite(value) for value in (time, low, high, open_, close, volume)):
        raise InvalidInputError("non-finite number")
    return Bar(datetime.fromtimestamp(time, UTC), open_, high, low, close, volume)


def _size(row: Any) -> str:
    return f"{len(row)} fields" if isinstance(row, list | tuple | dict | str) else "no fields"


def _check_aware(call: Call, *moments: datetime | None) -> None:
    if any(m is not None and m.utcoffset() is None for m in moments):
        raise InvalidInputError(f"{call.provider}: start and end must be timezone-aware (UTC)", **call.context())


def _ceil(moment: datetime, width: int) -> int:
    return math.ceil(moment.timestamp() / width) * width


def _floor(moment: datetime, width: int) -> int:
    return math.floor(moment.timestamp() / width) * width


def _iso(epoch_seconds: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
