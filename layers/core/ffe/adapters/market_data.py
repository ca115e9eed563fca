"""Choosing the market-data provider a function uses."""

from functools import cache

from ffe.adapters.replay import ReplayProvider
from ffe.domain.ports import MarketDataProvider
from ffe.settings import MarketDataSettings


@cache
def get_provider(settings: MarketDataSettings) -> MarketDataProvider:
    """The configured provider, built once per container (live providers arrive with issue #3)."""
    match settings.market_data_provider:
        case "replay":
            return ReplayProvider()
