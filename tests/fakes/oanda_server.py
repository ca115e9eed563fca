"""A fake OANDA v20 REST server for ``httpx.MockTransport``, speaking the documented wire format.

Routes (https://developer.oanda.com/rest-live-v20/instrument-ep/ and .../account-ep/), on both the practice and
the live host: ``GET /v3/instruments/{instrument}/candles`` (``price``, ``granularity``, ``count``, ``from``,
``to``, ``includeFirst``) and ``GET /v3/accounts/{accountID}/summary``. Every answer carries a ``RequestID``
header; errors are ``{"errorMessage": ...}`` with the documented wordings
(https://developer.oanda.com/rest-live-v20/troubleshooting-errors/).

Simplifications, on purpose: only ``price=M`` (mid) is served; bars are served as ``bars`` gives them, whatever
``dailyAlignment`` says; ``from`` is inclusive of the candle covering it (``includeFirst`` defaults to true),
``to`` is exclusive of candles opening at or after it; a candle is ``complete`` iff it closes by ``to``, or the
request has no ``to`` at all. ``count`` with both ``from`` and ``to`` is refused, as the docs say not to send it.
An instrument is unknown (400) when ``bars`` raises ``LookupError`` or ``ValueError`` for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from ffe.domain.models import Bar, Timeframe

BODIES = Path(__file__).parent / "bodies" / "oanda"
DEFAULT_COUNT = 500
MAX_COUNT = 5000
TIMEFRAMES = {
    "M1": Timeframe.M1,
    "M5": Timeframe.M5,
    "M15": Timeframe.M15,
    "M30": Timeframe.M30,
    "H1": Timeframe.H1,
    "H4": Timeframe.H4,
    "D": Timeframe.D1,
}
UNAUTHORIZED = "Insufficient authorization to perform request."
FORBIDDEN = "The provided request was forbidden."


def recorded(name: str) -> bytes:
    """A recorded body from ``tests/fakes/bodies/oanda``."""
    return (BODIES / name).read_bytes()


class _Refusal(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class FakeOandaMarketData:
    """``bars(asset, timeframe)`` is the full history it may serve; ``asset`` is the engine's symbol (EURUSD)."""

    hosts = ("api-fxpractice.oanda.com", "api-fxtrade.oanda.com")
    down: bool = False  # every request answers 503

    def __init__(
        self,
        bars: Callable[[str, Timeframe], Sequence[Bar]],
        token: str = "practice-token",
        account_id: str = "101-001-1234567-001",
    ) -> None:
        self.bars = bars
        self.token = token
        self.account_id = account_id
        self.down = False
        self.requests: list[httpx.Request] = []
        self._served = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self._served += 1
        headers = {"RequestID": str(24716400000000000 + self._served)}
        try:
            body = self._route(request)
        except _Refusal as refusal:
            return httpx.Response(refusal.status, json={"errorMessage": str(refusal)}, headers=headers)
        return httpx.Response(200, json=body, headers=headers)

    def _route(self, request: httpx.Request) -> dict[str, object]:
        if self.down:
            raise _Refusal("Service Unavailable", 503)
        if request.url.host not in self.hosts:
            raise _Refusal("Not Found", 404)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise _Refusal(UNAUTHORIZED, 401)
        parts = request.url.path.strip("/").split("/")
        if len(parts) == 4 and (parts[0], parts[1], parts[3]) == ("v3", "instruments", "candles"):
            return self._candles(parts[2], request.url.params)
        if len(parts) == 4 and (parts[0], parts[1], parts[3]) == ("v3", "accounts", "summary"):
            if parts[2] != self.account_id:
                raise _Refusal(FORBIDDEN, 403)
            return _summary(self.account_id)
        raise _Refusal("Not Found", 404)

    def _candles(self, instrument: str, query: httpx.QueryParams) -> dict[str, object]:
        granularity = query.get("granularity", "S5")
        if granularity not in TIMEFRAMES:
            raise _Refusal("Invalid value specified for 'granularity'")
        if query.get("price", "M") != "M":
            raise _Refusal("Invalid value specified for 'price'")
        timeframe = TIMEFRAMES[granularity]
        try:
            history = sorted(self.bars(instrument.replace("_", ""), timeframe), key=lambda bar: bar.time)
        except (LookupError, ValueError):
            raise _Refusal("Invalid value specified for 'instrument'") from None
        served, upper = _select(history, timeframe.duration, query)
        candles = [_candle(bar, upper is None or bar.time + timeframe.duration <= upper) for bar in served]
        return {"instrument": instrument, "granularity": granularity, "candles": candles}


def _select(history: list[Bar], width: timedelta, query: httpx.QueryParams) -> tuple[list[Bar], datetime | None]:
    """The bars a query selects, and its upper bound (``to``) if it has one."""
    start, end = _time(query, "from"), _time(query, "to")
    if "count" in query and start is not None and end is not None:
        raise _Refusal("The request was missing required data")  # count must not come with both from and to
    count = _count(query)
    if start is not None and end is not None:
        if end < start:
            raise _Refusal("Invalid value specified for 'to'")
        if math.ceil((end - start) / width) > MAX_COUNT:
            raise _Refusal("Maximum value for 'count' exceeded")
    if start is not None:
        include_first = query.get("includeFirst", "true").lower() != "false"
        selected = [b for b in history if (b.time + width > start if include_first else b.time > start)]
        selected = [b for b in selected if end is None or b.time < end]
        return (selected if end is not None else selected[:count]), end
    selected = [b for b in history if end is None or b.time < end]
    return selected[-count:], end


def _count(query: httpx.QueryParams) -> int:
    raw = query.get("count", str(DEFAULT_COUNT))
    if not raw.isdigit() or int(raw) < 1:
        raise _Refusal("Invalid value specified for 'count'")
    if int(raw) > MAX_COUNT:
        raise _Refusal("Maximum value for 'count' exceeded")
    return int(raw)


def _time(query: httpx.QueryParams, name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _Refusal(f"Invalid value specified for '{name}'") from None
    if moment.tzinfo is None:
        raise _Refusal(f"Invalid value specified for '{name}'")
    return moment.astimezone(UTC)


def _candle(bar: Bar, complete: bool) -> dict[str, object]:
    return {
        "complete": complete,
        "volume": round(bar.volume),
        "time": bar.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z"),
        "mid": {"o": _price(bar.open), "h": _price(bar.high), "l": _price(bar.low), "c": _price(bar.close)},
    }


def _price(value: float) -> str:
    """Five places like OANDA's majors, more when the value needs them to round-trip exactly."""
    text = repr(float(value))
    needed = len(text.split(".")[1]) if "." in text and "e" not in text else 10
    return f"{value:.{max(5, needed)}f}"


def _summary(account_id: str) -> dict[str, object]:
    account = {
        "id": account_id,
        "alias": "Primary",
        "currency": "USD",
        "balance": "100000.0000",
        "createdByUserID": 1234567,
        "createdTime": "2024-01-02T09:30:12.123456789Z",
        "guaranteedStopLossOrderMode": "DISABLED",
        "pl": "0.0000",
        "resettablePL": "0.0000",
        "marginRate": "0.02",
        "openTradeCount": 0,
        "openPositionCount": 0,
        "pendingOrderCount": 0,
        "hedgingEnabled": False,
        "unrealizedPL": "0.0000",
        "NAV": "100000.0000",
        "marginUsed": "0.0000",
        "marginAvailable": "100000.0000",
        "positionValue": "0.0000",
        "withdrawalLimit": "100000.0000",
        "lastTransactionID": "3",
    }
    return {"account": account, "lastTransactionID": "3"}
