"""Aggregating bars into a coarser timeframe (e.g. 1h -> 4h when a venue has no 4h candles)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ffe.domain.models import Bar, Timeframe


def resample(bars: Iterable[Bar], timeframe: Timeframe, as_of: datetime) -> list[Bar]:
    """Merge bars into ``timeframe`` buckets aligned to the Unix epoch (UTC); only buckets closed by ``as_of``."""
    width = int(timeframe.duration.total_seconds())
    out: list[Bar] = []
    bucket: list[Bar] = []
    for bar in bars:
        start = int(bar.time.timestamp()) // width * width
        if bucket and int(bucket[0].time.timestamp()) // width * width != start:
            out.append(_merge(bucket, width))
            bucket = []
        bucket.append(bar)
    if bucket:
        out.append(_merge(bucket, width))
    return [b for b in out if b.time + timeframe.duration <= as_of]


def _merge(bucket: list[Bar], width: int) -> Bar:
    start = datetime.fromtimestamp(int(bucket[0].time.timestamp()) // width * width, tz=bucket[0].time.tzinfo)
    return Bar(
        start,
        bucket[0].open,
        max(b.high for b in bucket),
        min(b.low for b in bucket),
        bucket[-1].close,
        sum(b.volume for b in bucket),
    )
