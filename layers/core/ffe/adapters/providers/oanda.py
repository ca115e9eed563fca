"""OANDA v20 REST: FX mid-price candles, and the account summary as the credentials probe.

Endpoints (https://developer.oanda.com/rest-live-v20/instrument-ep/ and .../account-ep/):
``GET /v3/instruments/{instrument}/candles?price=M&granularity=G&from=&to=&count=`` and
``GET /v3/accounts/{accountID}/summary``, both with ``Authorization: Bearer <token>``, on
https://api-fxpractice.oanda.com (practice) or https://api-fxtrade.oanda.com (live)
(https://developer.oanda.com/rest-live-v20/development-guide/). Candles come back oldest first as
``{"complete", "volume", "time" (RFC3339, nanoseconds), "mid": {"o", "h", "l", "c"} (decimal strings)}``;
errors are ``{"errorMessage": "..."}``; every response carries a ``RequestID`` header.

Choices:
- Daily candles are aligned to 00:00 UTC (``dailyAlignment=0&alignmentTimezone=UTC``), like every other venue
  here; OANDA's default is 17:00 New York.
- Complete candles only, except the very last one of the answer, which is kept even while still forming:
  the router drops any bar that has not closed by ``end``, and keeping it lets it see the venue is live.
- OANDA rejects a ``to`` in the future ("Invalid value specified for 'to'. Time is in the future",
  hootnot/oanda-api-v20#144), so unless ``end`` is past on this machine's clock by a few seconds of
  tolerated skew, the request carries ``from`` + ``count`` (or ``count`` alone) instead of ``to``; rows
  opening at or after ``end`` are dropped here either way.
- A range needs at most 5000 candles per request (the ``count`` maximum); longer ranges are split.
- The token is read from ``credentials()`` on every call and only ever travels in the Authorization header.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from ffe import utc
from ffe.adapters.providers.base import Call, Credentials, get_json, parse_price, split_pair
from ffe.domain.errors import AuthError, InvalidInputError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.universe import ASSET_CLASSES

HOSTS = {"practice": "https://api-fxpractice.oanda.com", "live": "https://api-fxtrade.oanda.com"}
GRANULARITY = {
    Timeframe.M1: "M1",
    Timeframe.M5: "M5",
    Timeframe.M15: "M15",
    Timeframe.M30: "M30",
    Timeframe.H1: "H1",
    Timeframe.H4: "H4",
    Timeframe.D1: "D",
}
RECENT_COUNT = 500  # the "most recent page" when no start is given (OANDA's own default count)
MAX_COUNT = 5000  # OANDA's maximum count, which also bounds a from/to range
CLOCK_SKEW = timedelta(seconds=5)  # a ``to`` this close to our "now" may be OANDA's future
_MID = ("o", "h", "l", "c")


class OandaProvider:
    name = "oanda"

    def __init__(
        self, client: httpx.Client, credentials: Credentials, *, clock: Callable[[], datetime] = utc.now
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._clock = clock

    def supports(self, asset_class: AssetClass) -> bool:
        return asset_class is AssetClass.FX

    def candles(
        self,
        asset: str,
        timeframe: Timeframe,
        start: datetime | None,
        end: datetime,
        asset_class: AssetClass | None = None,
    ) -> list[Bar]:
        """Mid-price bars opening in [start, end), oldest first; ``start=None`` gives the last 500 up to ``end``."""
        call = Call(self.name, asset, timeframe)
        self._check_asset(call)
        if any(m is not None and m.utcoffset() is None for m in (start, end)):
            raise InvalidInputError(f"{self.name}: start and end must be timezone-aware (UTC)", **call.context())
        if start is not None and start >= end:
            return []
        host, headers, _ = self._session(call)
        url = f"{host}/v3/instruments/{_instrument(call)}/candles"
        fixed = {"price": "M", "granularity": GRANULARITY[timeframe]}
        if timeframe.is_daily:
            fixed |= {"dailyAlignment": "0", "alignmentTimezone": "UTC"}
        rows: dict[datetime, tuple[Bar, bool]] = {}
        for window in _windows(timeframe, start, end, self._clock()):
            body, response = get_json(self._client, call, url, params=fixed | window, headers=headers)
            rows.update((bar.time, (bar, complete)) for bar, complete in _candles(body, call, response))
        ordered = [rows[t] for t in sorted(rows)]
        kept = [bar for i, (bar, complete) in enumerate(ordered) if complete or i == len(ordered) - 1]
        return [bar for bar in kept if (start is None or bar.time >= start) and bar.time < end]

    def probe(self) -> None:
        """The account summary: proves the token and the account id (AuthError on 401/403)."""
        call = Call(self.name)
        host, headers, account_id = self._session(call)
        if not account_id:
            raise AuthError(f"{self.name} credentials have no account_id", **call.context())
        url = f"{host}/v3/accounts/{quote(account_id, safe='')}/summary"
        body, response = get_json(self._client, call, url, headers=headers)
        if not isinstance(body, dict) or not isinstance(body.get("account"), dict):
            raise InvalidInputError(f"{self.name} sent an account summary without 'account'", **call.context(response))

    def _check_asset(self, call: Call) -> None:
        # Symbols outside the universe go to the venue, which answers 400 for an instrument it does not list.
        asset_class = ASSET_CLASSES.get(call.asset or "")
        if asset_class is not None and not self.supports(asset_class):
            raise InvalidInputError(f"{self.name} serves fx only, not {asset_class} ({call.asset})", **call.context())

    def _session(self, call: Call) -> tuple[str, dict[str, str], str | None]:
        """Host, headers and account id from the current credentials (read now, so rotation is picked up)."""
        credentials = self._credentials()
        token = credentials.get("token")
        if not token:
            raise AuthError(f"{self.name} credentials have no token", **call.context())
        environment = (credentials.get("environment") or "practice").strip().lower()
        if environment not in HOSTS:
            raise InvalidInputError(
                f"{self.name} environment must be one of {sorted(HOSTS)}, not {environment!r}", **call.context()
            )
        headers = {"Authorization": f"Bearer {token}", "Accept-Datetime-Format": "RFC3339"}
        return HOSTS[environment], headers, credentials.get("account_id")


def _windows(timeframe: Timeframe, start: datetime | None, end: datetime, now: datetime) -> Iterator[dict[str, str]]:
    """Query parameters covering [start, end): from/to while the range is past, else from + count."""
    past = now - CLOCK_SKEW
    if start is None:
        yield {"count": str(RECENT_COUNT)} | ({"to": _rfc3339(end)} if end <= past else {})
        return
    span = (MAX_COUNT - 1) * timeframe.duration  # - 1: the candle covering ``from`` is included too
    while start < end:
        stop = min(start + span, end)
        if stop <= past:
            yield {"from": _rfc3339(start), "to": _rfc3339(stop)}
        else:
            count = min(MAX_COUNT, math.ceil((stop - start) / timeframe.duration) + 1)
            yield {"from": _rfc3339(start), "count": str(count)}
        start = stop


def _instrument(call: Call) -> str:
    """'EURUSD' -> 'EUR_USD'."""
    try:
        return "_".join(split_pair(call.asset or ""))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{call.provider}: {call.asset!r} is not a currency pair", **call.context()) from exc


def _candles(body: Any, call: Call, response: httpx.Response) -> list[tuple[Bar, bool]]:
    candles = body.get("candles") if isinstance(body, dict) else None
    if not isinstance(candles, list):
        raise InvalidInputError(f"{call.provider} sent a body without a 'candles' list", **call.context(response))
    out = []
    for index, candle in enumerate(candles):
        try:
            out.append(_candle(candle, call))
        except (InvalidInputError, TypeError, KeyError, OverflowError) as exc:
            raise InvalidInputError(
                f"{call.provider} sent a malformed candle at index {index}: {str(candle)[:160]}",
                **call.context(response),
            ) from exc
    return out


def _candle(candle: Any, call: Call) -> tuple[Bar, bool]:
    if not isinstance(candle, dict) or not isinstance(candle.get("mid"), dict):
        raise InvalidInputError("expected an object with a 'mid' price object")
    complete = candle.get("complete")
    if not isinstance(complete, bool):
        raise InvalidInputError(f"'complete' is {complete!r}, not a boolean")
    time = _parse_time(candle.get("time"))
    open_, high, low, close = (parse_price(candle["mid"][key], f"mid.{key}", call) for key in _MID)
    volume = parse_price(candle.get("volume", 0), "volume", call)
    if not all(math.isfinite(v) for v in (open_, high, low, close, volume)):
        raise InvalidInputError("non-finite number")
    return Bar(time, open_, high, low, close, volume), complete


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidInputError(f"'time' is {value!r}, not an RFC3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"'time' {value!r} is not RFC3339") from exc
    if parsed.utcoffset() is None:
        raise InvalidInputError(f"'time' {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"
