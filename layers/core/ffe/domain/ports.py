"""Small Protocols the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ffe.domain.models import Bar, Timeframe


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One provider tried for a fetch: ``ok``, ``failed`` (with the error) or ``skipped`` (breaker open)."""

    provider: str
    outcome: str
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FetchedSeries:
    bars: Sequence[Bar]
    dataset: str
    synthetic: bool
    simulated_clock: bool
    route: tuple[RouteStep, ...] = ()
    cached_bars: int = 0  # how many of ``bars`` came from the bar cache, not the provider


class MarketDataProvider(Protocol):
    name: str

    def fetch(self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int) -> FetchedSeries:
        """Completed bars of ``asset`` closing at or before ``as_of``, at most ``lookback`` of them."""
        ...
