"""Alpha Vantage: FX, crypto and US-equity candles from its single ``/query`` endpoint.

Functions used (https://www.alphavantage.co/documentation/): FX_INTRADAY, FX_DAILY, CRYPTO_INTRADAY,
DIGITAL_CURRENCY_DAILY, TIME_SERIES_INTRADAY, TIME_SERIES_DAILY, and CURRENCY_EXCHANGE_RATE for the probe.

Alpha Vantage reports most failures as HTTP 200 with a JSON body ("Error Message", "Note",
"Information"), so those are classified here; HTTP-level failures are classified by ``base``.
The API key travels in the query string: it is read per call, never stored, and scrubbed from
any provider text that ends up in an error (the daily-limit notice echoes it back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from ffe.adapters.providers.base import Call, Credentials, get_json, looks_like_auth, parse_price, split_pair
from ffe.domain.errors import AuthError, FfeError, InvalidInputError, RateLimitedError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.resample import resample
from ffe.domain.universe import class_of

BASE_URL = "https://www.alphavantage.co/query"
INTERVALS = {
    Timeframe.M1: "1min",
    Timeframe.M5: "5min",
    Timeframe.M15: "15min",
    Timeframe.M30: "30min",
    Timeframe.H1: "60min",
}
# outputsize=compact is the latest 100 data points; ask for it only when the window is safely inside them.
COMPACT_SAFE_BARS = 90
INTRADAY_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_ZONES = {AssetClass.FX: "UTC", AssetClass.CRYPTO: "UTC", AssetClass.EQUITY: "US/Eastern"}
_FIELDS = ((1, "open"), (2, "high"), (3, "low"), (4, "close"))

# Observed wordings: "Our standard API call frequency is 5 calls per minute and 500 calls per day",
# "our standard API rate limit is 25 requests per day", "spreading out your free API requests more
# sparingly (1 request per second)". Checked before the auth wording: the daily notice names "API key".
_RATE_LIMIT = re.compile(
    r"call frequency|rate limit|sparingly|(?:calls?|requests?) per (?:second|minute|hour|day)", re.I
)
_PER_MINUTE = re.compile(r"per minute", re.I)
_PER_SECOND = re.compile(r"per second", re.I)
_PREMIUM = re.compile(r"premium endpoint|premium (?:plan|membership|subscription)", re.I)


@dataclass(frozen=True, slots=True)
class _Query:
    """One Alpha Vantage function call and the key its time series comes back under."""

    params: dict[str, str]
    series_key: str
    daily: bool


class AlphaVantageProvider:
    name = "alpha_vantage"

    def __init__(self, client: httpx.Client, credentials: Credentials, base_url: str = BASE_URL) -> None:
        self._client = client
        self._credentials = credentials
        self._base_url = base_url

    def supports(self, asset_class: AssetClass) -> bool:
        return asset_class in (AssetClass.FX, AssetClass.CRYPTO, AssetClass.EQUITY)

    def candles(
        self,
        asset: str,
        timeframe: Timeframe,
        start: datetime | None,
        end: datetime,
        asset_class: AssetClass | None = None,
    ) -> list[Bar]:
        call = Call(self.name, asset, timeframe)
        try:
            asset_class = class_of(asset, asset_class)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.name}: {exc}", **call.context()) from exc
        # 4h is not an Alpha Vantage interval: fetch 60min and merge (a 4h bar at or after start only holds hours
        # at or after start, so the 1h window needs no widening).
        native = Timeframe.H1 if timeframe is Timeframe.H4 else timeframe
        query = _query(asset_class, asset, native, _outputsize(native, start), call)
        body, response = self._fetch(call, query.params, query.series_key)
        zone = UTC if query.daily else _zone(body, asset_class, call, response)
        bars = sorted(
            (_bar(key, row, query.daily, zone, call, response) for key, row in body[query.series_key].items()),
            key=lambda bar: bar.time,
        )
        if timeframe is Timeframe.H4:
            bars = resample(_window(bars, start, end), Timeframe.H4, end)
        return _window(bars, start, end)

    def probe(self) -> None:
        call = Call(self.name, "EURUSD")
        params = {"function": "CURRENCY_EXCHANGE_RATE", "from_currency": "EUR", "to_currency": "USD"}
        body, response = self._fetch(call, params, "Realtime Currency Exchange Rate")
        _number(body["Realtime Currency Exchange Rate"].get("5. Exchange Rate"), "exchange rate", call, response)

    def _fetch(self, call: Call, params: dict[str, str], expected: str) -> tuple[dict[str, Any], httpx.Response]:
        """GET the function; return the body once it is known to hold ``expected``, else raise the classified error."""
        api_key = self._api_key(call)
        body, response = get_json(
            self._client, call, self._base_url, secrets=(api_key,), params={**params, "apikey": api_key}
        )
        if isinstance(body, dict) and isinstance(body.get(expected), dict):
            return body, response
        ctx = call.context(response, function=params["function"])
        if isinstance(body, dict):
            for field in ("Error Message", "Note", "Information"):
                if isinstance(body.get(field), str):
                    raise _classify(self.name, field, _scrub(body[field], api_key), ctx)
            got = ", ".join(sorted(body)[:6]) or "an empty object"
        else:
            got = type(body).__name__
        raise InvalidInputError(f"{self.name} malformed payload: no {expected!r} object (got {got})", **ctx)

    def _api_key(self, call: Call) -> str:
        key = self._credentials().get("api_key")
        if not key:
            raise AuthError(f"{self.name} credentials have no api_key", **call.context())
        return key


def _classify(provider: str, field: str, text: str, ctx: dict[str, object]) -> FfeError:
    """The engine error for an Alpha Vantage 200 body that carries a message instead of data."""
    if field == "Error Message":
        if looks_like_auth(text):
            return AuthError(f"{provider} rejected the API key: {text}", **ctx)
        return InvalidInputError(f"{provider} refused the request: {text}", **ctx)
    if _RATE_LIMIT.search(text):
        return RateLimitedError(f"{provider} rate limit: {text}", retry_after_seconds=_retry_after(text), **ctx)
    if _PREMIUM.search(text) or looks_like_auth(text):
        return AuthError(f"{provider} refused the key for this request: {text}", **ctx)
    return InvalidInputError(f"{provider} answered with a {field!r} instead of data: {text}", **ctx)


def _retry_after(text: str) -> float | None:
    if _PER_MINUTE.search(text):
        return 60.0
    if _PER_SECOND.search(text):
        return 1.0
    return None  # a daily quota: no useful wait to suggest


def _scrub(text: str, api_key: str) -> str:
    return text.replace(api_key, "***")[:300]


def _query(asset_class: AssetClass, asset: str, timeframe: Timeframe, outputsize: str, call: Call) -> _Query:
    daily = timeframe is Timeframe.D1
    interval = INTERVALS.get(timeframe)
    if not daily and interval is None:
        raise InvalidInputError(f"alpha_vantage has no {timeframe} interval", **call.context())
    size = {"outputsize": outputsize}
    if asset_class is AssetClass.EQUITY:
        if daily:
            return _Query({"function": "TIME_SERIES_DAILY", "symbol": asset, **size}, "Time Series (Daily)", True)
        params = {"function": "TIME_SERIES_INTRADAY", "symbol": asset, "interval": str(interval), **size}
        return _Query(params, f"Time Series ({interval})", False)
    try:
        base, quote = split_pair(asset)
    except InvalidInputError as exc:
        raise InvalidInputError(f"alpha_vantage: {exc}", **call.context()) from exc
    if asset_class is AssetClass.FX:
        pair = {"from_symbol": base, "to_symbol": quote}
        if daily:
            return _Query({"function": "FX_DAILY", **pair, **size}, "Time Series FX (Daily)", True)
        params = {"function": "FX_INTRADAY", **pair, "interval": str(interval), **size}
        return _Query(params, f"Time Series FX ({interval})", False)
    market = {"symbol": base, "market": quote}
    if daily:  # DIGITAL_CURRENCY_DAILY takes no outputsize: it always returns the full history
        return _Query({"function": "DIGITAL_CURRENCY_DAILY", **market}, "Time Series (Digital Currency Daily)", True)
    params = {"function": "CRYPTO_INTRADAY", **market, "interval": str(interval), **size}
    return _Query(params, f"Time Series Crypto ({interval})", False)


def _outputsize(timeframe: Timeframe, start: datetime | None) -> str:
    if start is None or datetime.now(UTC) - start <= timeframe.duration * COMPACT_SAFE_BARS:
        return "compact"
    return "full"


def _window(bars: list[Bar], start: datetime | None, end: datetime) -> list[Bar]:
    return [bar for bar in bars if (start is None or start <= bar.time) and bar.time < end]


def _zone(body: dict[str, Any], asset_class: AssetClass, call: Call, response: httpx.Response) -> tzinfo:
    """The zone intraday keys are written in: Meta Data's "... Time Zone" (UTC for FX/crypto, US/Eastern for stocks)."""
    meta = body.get("Meta Data")
    name = DEFAULT_ZONES[asset_class]
    if isinstance(meta, dict):
        name = next((str(v) for k, v in meta.items() if str(k).endswith("Time Zone")), name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(f"alpha_vantage sent an unknown time zone {name!r}", **call.context(response)) from exc


def _bar(key: str, row: Any, daily: bool, zone: tzinfo, call: Call, response: httpx.Response) -> Bar:
    if not isinstance(row, dict):
        raise InvalidInputError(
            f"alpha_vantage malformed payload: bar {key!r} is not an object", **call.context(response)
        )
    try:
        if daily:  # a calendar date: the bar opens at 00:00 UTC of that date
            opened = datetime.combine(date.fromisoformat(key), time(0), tzinfo=UTC)
        else:  # the bar's open time, local to the series' zone
            opened = datetime.strptime(key, INTRADAY_FORMAT).replace(tzinfo=zone).astimezone(UTC)
    except ValueError as exc:
        raise InvalidInputError(
            f"alpha_vantage sent an unparseable bar time {key!r}", **call.context(response)
        ) from exc
    o, h, l, c = (_number(_field(row, number, name), name, call, response) for number, name in _FIELDS)  # noqa: E741
    volume = row.get("5. volume")
    return Bar(opened, o, h, l, c, _number(volume, "volume", call, response) if volume is not None else 0.0)


def _number(value: Any, field: str, call: Call, response: httpx.Response) -> float:
    """``base.parse_price``, re-raised with the response's status and request id in the context."""
    try:
        return parse_price(value, field, call)
    except InvalidInputError as exc:
        message = f"{call.provider} sent a non-numeric {field}: {value!r}"
        raise InvalidInputError(message, **call.context(response)) from exc


def _field(row: dict[str, Any], number: int, name: str) -> Any:
    """``"1. open"``; DIGITAL_CURRENCY_DAILY before 2024 sent ``"1a. open (USD)"`` in the market currency."""
    if f"{number}. {name}" in row:
        return row[f"{number}. {name}"]
    prefix = f"{number}a. {name}"
    return next((value for key, value in row.items() if str(key).startswith(prefix)), None)
