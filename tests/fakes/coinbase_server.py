"""A fake Coinbase Exchange candles endpoint for ``httpx.MockTransport``, speaking the documented wire format.

``GET /products/{product_id}/candles?granularity=G&start=&end=`` as documented at
https://docs.cdp.coinbase.com/api-reference/exchange-api/rest-api/products/get-product-candles: an array of
``[time, low, high, open, close, volume]`` rows (JSON numbers, ``time`` = bucket start in Unix seconds), newest
first, at most 300; ``granularity`` in {60, 300, 900, 3600, 21600, 86400}; errors as ``{"message": ...}``.

Simplifications, on purpose: ``start``/``end`` are inclusive bucket-start bounds and must come together (either
alone is ignored, as upstream); a range of more than 300 buckets is rejected with the upstream wording; with no
range the "now" it ends at is the newest bar of the history. 21600 (6h) is merged here from ``bars(asset, 1h)``.
A product is unknown (404 ``NotFound``) when ``bars`` raises ``LookupError`` or ``ValueError`` for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ffe.domain.models import Bar, Timeframe

BODIES = Path(__file__).parent / "bodies" / "coinbase"
MAX_CANDLES = 300
TIMEFRAMES = {
    60: Timeframe.M1,
    300: Timeframe.M5,
    900: Timeframe.M15,
    3600: Timeframe.H1,
    21600: Timeframe.H1,  # merged into 6h buckets below
    86400: Timeframe.D1,
}
TOO_MANY = "granularity too small for the requested time range. Count of aggregations requested exceeds 300"


def recorded(name: str) -> bytes:
    """A recorded body from ``tests/fakes/bodies/coinbase``."""
    return (BODIES / name).read_bytes()


class FakeCoinbaseMarketData:
    """``bars(asset, timeframe)`` is the full history it may serve; ``asset`` is the engine's symbol (BTCUSD)."""

    host = "api.exchange.coinbase.com"
    down: bool = False  # every request answers 503 {"message": "service unavailable"}

    def __init__(self, bars: Callable[[str, Timeframe], Sequence[Bar]]) -> None:
        self.bars = bars
        self.down = False
        self.requests: list[httpx.Request] = []
        self._served = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self._served += 1
        headers = {"x-request-id": f"fake-cb-{self._served:06d}"}
        if self.down:
            return httpx.Response(503, json={"message": "service unavailable"}, headers=headers)
        parts = request.url.path.strip("/").split("/")
        if request.url.host != self.host or len(parts) != 3 or (parts[0], parts[2]) != ("products", "candles"):
            return httpx.Response(404, json={"message": "NotFound"}, headers=headers)
        status, body = self._candles(parts[1], request.url.params)
        return httpx.Response(status, json=body, headers=headers)

    def _candles(self, product_id: str, query: httpx.QueryParams) -> tuple[int, object]:
        granularity = query.get("granularity", "")
        if not granularity.isdigit() or int(granularity) not in TIMEFRAMES:
            return 400, {"message": "Unsupported granularity"}
        step = int(granularity)
        try:
            history = sorted(self.bars(product_id.replace("-", ""), TIMEFRAMES[step]), key=lambda bar: bar.time)
        except (LookupError, ValueError):
            return 404, {"message": "NotFound"}
        if step == 21600:
            history = _merge(history, step)
        if query.get("start") and query.get("end"):
            try:
                start, end = _epoch(query["start"]), _epoch(query["end"])
            except ValueError:
                return 400, {"message": "Invalid start or end"}
            if end < start:
                return 400, {"message": "start must be before end"}
            if (end - start) // step + 1 > MAX_CANDLES:
                return 400, {"message": TOO_MANY}
            served = [bar for bar in history if start <= bar.time.timestamp() <= end]
        else:
            served = history[-MAX_CANDLES:]
        return 200, [_row(bar) for bar in reversed(served[-MAX_CANDLES:])]


def _row(bar: Bar) -> list[float | int]:
    return [int(bar.time.timestamp()), bar.low, bar.high, bar.open, bar.close, bar.volume]


def _epoch(value: str) -> int:
    """ISO 8601 or Unix seconds, as the endpoint accepts both."""
    try:
        return int(float(value))
    except ValueError:
        moment = datetime.fromisoformat(value)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _merge(bars: Sequence[Bar], width: int) -> list[Bar]:
    buckets: dict[int, list[Bar]] = {}
    for bar in bars:
        buckets.setdefault(int(bar.time.timestamp()) // width * width, []).append(bar)
    return [
        Bar(
            datetime.fromtimestamp(start, UTC),
            group[0].open,
            max(b.high for b in group),
            min(b.low for b in group),
            group[-1].close,
            sum(b.volume for b in group),
        )
        for start, group in sorted(buckets.items())
    ]
