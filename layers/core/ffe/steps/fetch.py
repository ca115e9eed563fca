"""FetchMarketData: bars for one asset, validated before they leave the step."""

from dataclasses import asdict
from datetime import datetime

from ffe.contracts import AssetTask, BarModel, DataSource, MarketData, RouteStepModel, digest_bars, parse
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

    Raises:
        InvalidInputError: unknown asset, or bars that fail validation (NaN, non-positive prices,
            duplicated, out-of-order or future timestamps, naive times).
    """
    asset_class_of(task.asset)
    fetched = provider.fetch(task.asset, task.timeframe, task.as_of, lookback)
    parsed = [parse(BarModel, asdict(bar), name=f"bar {i} from {provider.name}") for i, bar in enumerate(fetched.bars)]
    validate_series([b.to_domain() for b in parsed], task.as_of)  # before dropping: a future bar is an error
    bars = [b for b in parsed if b.time + task.timeframe.duration <= task.as_of]
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
    payload = {**task.model_dump(exclude={"item"}), "source": source, "bars": bars, "bars_sha256": digest_bars(bars)}
    return parse(MarketData, payload)
