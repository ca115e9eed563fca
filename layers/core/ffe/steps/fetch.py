"""FetchMarketData: bars for one asset, validated before they leave the step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from itertools import compress
from operator import attrgetter

from pydantic import ValidationError

from ffe.contracts import (
    AssetTask,
    BarColumns,
    BarModel,
    Contract,
    DataSource,
    MarketData,
    RouteStepModel,
    UtcDatetime,
    digest_fields,
    parse,
    seal_bars,
)
from ffe.domain.models import Bar
from ffe.domain.ports import MarketDataProvider
from ffe.domain.series import validate_columns
from ffe.domain.universe import class_of


def fetch_market_data(
    task: AssetTask, provider: MarketDataProvider, lookback: int, started_at: datetime | None = None
) -> MarketData:
    """Fetch ``lookback`` completed bars of ``task.asset`` as of ``task.as_of``.

    ``started_at`` (the wall clock when the fetch began) travels in ``source.fetch_started_at`` to
    RecordDecision, which measures the decision path's latency from it.

    A bar the provider returns that opened by ``as_of`` but closes after it is still forming: it is
    dropped, and ``source.forming_bars_dropped`` counts it.

    This is where the bars enter: they are validated here and sealed (``seal_bars``), and every later boundary
    checks them by the seal (in full when it no longer matches).

    Raises:
        InvalidInputError: unknown asset, or bars that fail validation (NaN, non-positive prices,
            duplicated, out-of-order or future timestamps, naive times).
    """
    class_of(task.asset, task.asset_class)  # an asset neither the universe file nor the table knows fails here
    fetched = provider.fetch(task.asset, task.timeframe, task.as_of, lookback, task.asset_class)
    fields = _bar_fields(fetched.bars, provider.name)
    validate_columns(*fields, task.as_of)  # before dropping: a future bar is an error
    step, as_of = task.timeframe.duration, task.as_of
    closed = [time + step <= as_of for time in fields[0]]
    times, prices = list(compress(fields[0], closed)), [list(compress(column, closed)) for column in fields[1:]]
    source = DataSource(
        provider=provider.name,
        dataset=fetched.dataset,
        synthetic=fetched.synthetic,
        simulated_clock=fetched.simulated_clock,
        route=[RouteStepModel(**asdict(step)) for step in fetched.route],
        cached_bars=fetched.cached_bars,
        forming_bars_dropped=len(closed) - len(times),
        fetch_started_at=started_at,
    )
    # What MarketData checks holds here by construction, so the seal may stand for it from the start: the series as
    # fetched passed validate_series, the bars kept all closed by as_of, and bars_sha256 is their digest.
    digest, columns = digest_fields(times, *prices), BarColumns.of_fields(times, *prices)
    payload = {
        **task.model_dump(exclude={"item"}),
        "source": source,
        "bars": columns,
        "bars_sha256": digest,
        "bars_seal": seal_bars(task.as_of, task.timeframe, columns, digest),
    }
    return parse(MarketData, payload)


def _bar_fields(bars: Sequence[Bar], provider: str) -> _Fields:
    """The provider's bars as contracts, as columns (time, open, high, low, close, volume), validated in one call:
    the same validation as a ``BarModel`` per bar (lists of the same field types); a bar it refuses is named by a
    bar-by-bar parse."""
    if all(type(bar) is Bar for bar in bars):
        columns = list(zip(*map(_FIELDS, bars), strict=True)) or [()] * 6
        try:
            valid = _FetchedBars.model_validate(dict(zip(_NAMES, map(list, columns), strict=True)))
            return valid.time, valid.open, valid.high, valid.low, valid.close, valid.volume
        except ValidationError:
            pass
    models = [parse(BarModel, asdict(bar), name=f"bar {i} from {provider}") for i, bar in enumerate(bars)]
    by_field = list(zip(*map(_FIELDS, models), strict=True)) or [()] * 6
    return tuple(map(list, by_field))  # type: ignore[return-value]


class _FetchedBars(Contract):
    """The provider's bars as columns, each field validated as :class:`BarModel` validates it."""

    time: list[UtcDatetime]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]


_Fields = tuple[list[datetime], list[float], list[float], list[float], list[float], list[float]]
_NAMES = ("time", "open", "high", "low", "close", "volume")
_FIELDS = attrgetter(*_NAMES)
