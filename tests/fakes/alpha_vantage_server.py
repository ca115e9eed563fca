"""A fake Alpha Vantage ``/query`` endpoint for ``httpx.MockTransport``, speaking the documented wire format.

Routes on the ``function`` query parameter like https://www.alphavantage.co/documentation/: FX_INTRADAY,
FX_DAILY, CRYPTO_INTRADAY, DIGITAL_CURRENCY_DAILY, TIME_SERIES_INTRADAY, TIME_SERIES_DAILY and
CURRENCY_EXCHANGE_RATE. Series come newest first, keyed by open time in the series' zone (US/Eastern
for stocks, UTC otherwise), prices as strings; errors and throttling are HTTP 200 bodies, as upstream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

import httpx

from ffe.domain.models import Bar, Timeframe

INVALID_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
RATE_LIMIT_NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day. "
    "Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency."
)
COMPACT = 100  # outputsize=compact: the latest 100 data points
KEY_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMEFRAMES = {
    "1min": Timeframe.M1,
    "5min": Timeframe.M5,
    "15min": Timeframe.M15,
    "30min": Timeframe.M30,
    "60min": Timeframe.H1,
}
NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "USD": "United States Dollar", "EUR": "Euro", "GBP": "British Pound"}

# function -> (asset kind, series key, "1. Information", Meta Data fields in the documented order)
_FUNCTIONS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "FX_INTRADAY": (
        "fx",
        "Time Series FX ({interval})",
        "FX Intraday ({interval}) Time Series",
        ("From Symbol", "To Symbol", "Last Refreshed", "Interval", "Output Size", "Time Zone"),
    ),
    "FX_DAILY": (
        "fx",
        "Time Series FX (Daily)",
        "Forex Daily Prices (open, high, low, close)",
        ("From Symbol", "To Symbol", "Output Size", "Last Refreshed", "Time Zone"),
    ),
    "CRYPTO_INTRADAY": (
        "crypto",
        "Time Series Crypto ({interval})",
        "Crypto Intraday ({interval}) Time Series",
        (
            "Digital Currency Code",
            "Digital Currency Name",
            "Market Code",
            "Market Name",
            "Last Refreshed",
            "Interval",
            "Output Size",
            "Time Zone",
        ),
    ),
    "DIGITAL_CURRENCY_DAILY": (
        "crypto",
        "Time Series (Digital Currency Daily)",
        "Daily Prices and Volumes for Digital Currency",
        ("Digital Currency Code", "Digital Currency Name", "Market Code", "Market Name", "Last Refreshed", "Time Zone"),
    ),
    "TIME_SERIES_INTRADAY": (
        "equity",
        "Time Series ({interval})",
        "Intraday ({interval}) open, high, low, close prices and volume",
        ("Symbol", "Last Refreshed", "Interval", "Output Size", "Time Zone"),
    ),
    "TIME_SERIES_DAILY": (
        "equity",
        "Time Series (Daily)",
        "Daily Prices (open, high, low, close) and Volumes",
        ("Symbol", "Last Refreshed", "Output Size", "Time Zone"),
    ),
}


class FakeAlphaVantage:
    """``bars(asset, timeframe)`` is the full history it may serve; ``asset`` is the engine's symbol (EURUSD, SPY)."""

    host = "www.alphavantage.co"
    down: bool = False  # every request answers 503
    rate_limited: bool = False  # every request answers 200 with the documented "Note"

    def __init__(self, bars: Callable[[str, Timeframe], Sequence[Bar]], api_key: str = "demo-key") -> None:
        self.bars = bars
        self.api_key = api_key
        self.down = False
        self.rate_limited = False
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host != self.host or request.url.path != "/query":
            return httpx.Response(404, text="Not Found")
        if self.down:
            return httpx.Response(503, text="Service Unavailable")
        query = request.url.params
        if query.get("apikey") != self.api_key:
            return httpx.Response(200, json={"Error Message": INVALID_KEY})
        if self.rate_limited:
            return httpx.Response(200, json={"Note": RATE_LIMIT_NOTE})
        function = query.get("function", "")
        if function != "CURRENCY_EXCHANGE_RATE" and function not in _FUNCTIONS:
            return httpx.Response(200, json={"Error Message": f"This API function ({function}) does not exist."})
        try:
            body = self._exchange_rate(query) if function == "CURRENCY_EXCHANGE_RATE" else self._series(function, query)
        except (LookupError, ValueError):  # a missing parameter or a symbol the test has no bars for
            message = (
                "Invalid API call. Please retry or visit the documentation "
                f"(https://www.alphavantage.co/documentation/) for {function}."
            )
            return httpx.Response(200, json={"Error Message": message})
        return httpx.Response(200, json=body)

    def _series(self, function: str, query: Mapping[str, str]) -> dict[str, object]:
        kind, series_key, information, fields = _FUNCTIONS[function]
        daily = "Daily" in series_key
        interval = "" if daily else query["interval"]
        if kind == "fx":
            asset, base, quote = query["from_symbol"] + query["to_symbol"], query["from_symbol"], query["to_symbol"]
        elif kind == "crypto":
            asset, base, quote = query["symbol"] + query["market"], query["symbol"], query["market"]
        else:
            asset, base, quote = query["symbol"], query["symbol"], ""
        history = sorted(self.bars(asset, Timeframe.D1 if daily else TIMEFRAMES[interval]), key=lambda bar: bar.time)
        compact = function != "DIGITAL_CURRENCY_DAILY" and query.get("outputsize", "compact") == "compact"
        # Stock keys are US/Eastern wall time, as upstream: the repeated hour on a fall-back night would collide,
        # which upstream never meets (it serves 04:00-20:00 on trading days); keep test histories clear of it.
        zone: tzinfo = ZoneInfo("US/Eastern") if kind == "equity" else UTC
        series = {
            bar.time.date().isoformat() if daily else bar.time.astimezone(zone).strftime(KEY_FORMAT): _row(
                bar, function
            )
            for bar in reversed(history[-COMPACT:] if compact else history)
        }
        values = {
            "From Symbol": base,
            "To Symbol": quote,
            "Digital Currency Code": base,
            "Digital Currency Name": NAMES.get(base, base),
            "Market Code": quote,
            "Market Name": NAMES.get(quote, quote),
            "Symbol": base,
            "Last Refreshed": next(iter(series), ""),
            "Interval": interval,
            "Output Size": "Compact" if compact else "Full size",
            "Time Zone": str(zone),
        }
        meta = {"1. Information": information.format(interval=interval)}
        meta |= {f"{number}. {field}": values[field] for number, field in enumerate(fields, start=2)}
        return {"Meta Data": meta, series_key.format(interval=interval): series}

    def _exchange_rate(self, query: Mapping[str, str]) -> dict[str, object]:
        base, quote = query["from_currency"], query["to_currency"]
        try:
            last = list(self.bars(base + quote, Timeframe.H1))[-1:]
        except (LookupError, ValueError):
            last = []
        rate = last[0].close if last else 1.0
        refreshed = last[0].time.strftime(KEY_FORMAT) if last else "2024-01-02 00:00:00"
        return {
            "Realtime Currency Exchange Rate": {
                "1. From_Currency Code": base,
                "2. From_Currency Name": NAMES.get(base, base),
                "3. To_Currency Code": quote,
                "4. To_Currency Name": NAMES.get(quote, quote),
                "5. Exchange Rate": _price(rate, 8),
                "6. Last Refreshed": refreshed,
                "7. Time Zone": "UTC",
                "8. Bid Price": _price(rate, 8),
                "9. Ask Price": _price(rate, 8),
            }
        }


def _row(bar: Bar, function: str) -> dict[str, object]:
    """One bar as that function writes it: FX has no volume, CRYPTO_INTRADAY sends volume as a JSON number."""
    decimals = {"FX_INTRADAY": 5, "FX_DAILY": 5, "CRYPTO_INTRADAY": 5, "DIGITAL_CURRENCY_DAILY": 8}.get(function, 4)
    prices = ("1. open", bar.open), ("2. high", bar.high), ("3. low", bar.low), ("4. close", bar.close)
    row: dict[str, object] = {key: _price(value, decimals) for key, value in prices}
    if function == "CRYPTO_INTRADAY":
        row["5. volume"] = int(bar.volume) if bar.volume.is_integer() else bar.volume
    elif function == "DIGITAL_CURRENCY_DAILY":
        row["5. volume"] = _price(bar.volume, 8)
    elif not function.startswith("FX_"):
        row["5. volume"] = str(int(bar.volume)) if bar.volume.is_integer() else repr(bar.volume)
    return row


def _price(value: float, decimals: int) -> str:
    """At least ``decimals`` places, more when the value needs them to round-trip exactly."""
    text = repr(float(value))
    needed = len(text.split(".")[1]) if "." in text and "e" not in text else 10
    return f"{value:.{max(decimals, needed)}f}"
