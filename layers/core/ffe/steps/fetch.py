"""FetchMarketData: bars for one asset, validated before they leave the step."""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from pydantic import ValidationError

from ffe.contracts import (
    AssetTask,
    BarColumns,
    BarModel,
    DataSource,
    MarketData,
    RouteStepModel,
    bar_list_adapter,
    digest_bars,
    parse,
    seal_bars,
)
from ffe.domain.models import Bar
from ffe.domain.ports import MarketDataProvider
from ffe.domain.series import validate_series
from ffe.domain.universe import asset_class_of


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
    asset_class_of(task.asset)
    fetched = provider.fetch(task.asset, task.timeframe, task.as_of, lookback)
    parsed = _bar_models(fetched.bars, provider.name)
    validate_series(parsed, task.as_of)  # before dropping: a future bar is an error
    step, as_of = task.timeframe.duration, task.as_of
    bars = [b for b in parsed if b.time + step <= as_of]
    source = DataSource(
        provider=provider.name,
        dataset=fetched.dataset,
        synthetic=fetched.synthetic,
        simulated_clock=fetched.simulated_clock,
        route=[RouteStepModel(**asdict(step)) for step in fetched.route],
        cached_bars=fetched.cached_bars,
        forming_bars_dropped=len(parsed) - len(bars),
        fetch_started_at=started_at,
    )
    # What MarketData checks holds here by construction, so the seal may stand for it from the start: the series as
    # fetched passed validate_series, the bars kept all closed by as_of, and bars_sha256 is their digest.
    digest, columns = digest_bars(bars), BarColumns.of(bars)
    payload = {
        **task.model_dump(exclude={"item"}),
        "source": source,
        "bars": columns,
        "bars_sha256": digest,
        "bars_seal": seal_bars(task.as_of, task.timeframe, columns, digest),
    }
    return parse(MarketData, payload)


def _bar_models(bars: Sequence[Bar], provider: str) -> list[BarModel]:
    """The provider's bars as contracts, validated in one call; a bar it refuses is named by a bar-by-bar parse."""
    if all(type(bar) is Bar for bar in bars):
        fields = [
            {"time": b.time, "open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume}
            for b in bars
        ]
        try:
            return bar_list_adapter().validate_python(fields)
        except ValidationError:
            pass
    return [parse(BarModel, asdict(bar), name=f"bar {i} from {provider}") for i, bar in enumerate(bars)]
