"""Bars already fetched, kept in DynamoDB so each cycle asks a provider only for the bars it lacks.

One item per bar: partition ``series`` = ``provider#asset#timeframe``, sort key ``t`` = the bar's open
time in epoch seconds. A cycle reads the newest ``lookback`` bars with one Query; the provider is then
asked only for bars after the last cached one. Items expire through DynamoDB TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ffe.domain.errors import TransientError
from ffe.domain.models import Bar, Timeframe

_FIELDS = ("o", "h", "l", "c", "v")


class DynamoDBBarCache:
    def __init__(self, table: Any, retention: timedelta = timedelta(days=45)) -> None:
        self._table = table
        self._retention = retention

    def recent(self, provider: str, asset: str, timeframe: Timeframe, as_of: datetime, limit: int) -> list[Bar]:
        """Up to ``limit`` cached bars that had closed by ``as_of``, oldest first."""
        last_open = int((as_of - timeframe.duration).timestamp())
        try:
            response = self._table.query(
                KeyConditionExpression="series = :s AND t <= :t",
                ExpressionAttributeValues={":s": _series(provider, asset, timeframe), ":t": last_open},
                ScanIndexForward=False,
                Limit=limit,
            )
        except Exception as exc:  # botocore errors: the cache is an optimisation
            raise TransientError(f"bar cache unavailable: {exc}", provider=provider, asset=asset) from exc
        return [_bar(item) for item in reversed(response.get("Items", []))]

    def put(self, provider: str, asset: str, timeframe: Timeframe, bars: Sequence[Bar]) -> None:
        series = _series(provider, asset, timeframe)
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        with self._table.batch_writer(overwrite_by_pkeys=["series", "t"]) as batch:
            for bar in bars:
                item = {"series": series, "t": int(bar.time.timestamp()), "expires_at": expires}
                item.update(zip(_FIELDS, (Decimal(repr(v)) for v in _values(bar)), strict=True))
                batch.put_item(Item=item)

    def reachable(self) -> bool:
        try:
            self._table.load()
        except Exception:
            return False
        return True


def _series(provider: str, asset: str, timeframe: Timeframe) -> str:
    return f"{provider}#{asset}#{timeframe}"


def _values(bar: Bar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume)


def _bar(item: dict[str, Any]) -> Bar:
    o, h, low, c, v = (float(item[f]) for f in _FIELDS)
    return Bar(datetime.fromtimestamp(int(item["t"]), tz=UTC), o, h, low, c, v)
