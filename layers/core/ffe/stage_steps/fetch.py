"""FetchMarketData's step with the stage's provider and its metrics."""

from __future__ import annotations

from datetime import datetime

from ffe import utc
from ffe.adapters.market_data import get_provider
from ffe.contracts import AssetTask, MarketData
from ffe.decision_metrics import fetch_metrics
from ffe.settings import MarketDataSettings, get_settings
from ffe.steps.fetch import fetch_market_data


def fetch(task: AssetTask, started: datetime | None = None) -> MarketData:
    """FetchMarketData; ``started`` (default now) is where the decision path's latency runs from."""
    started = started or utc.now()
    settings = get_settings(MarketDataSettings)
    data = fetch_market_data(task, provider=get_provider(settings), lookback=settings.lookback_bars, started_at=started)
    fetch_metrics(data)
    return data
