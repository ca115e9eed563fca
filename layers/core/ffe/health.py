"""Health of the market-data side (which providers are configured, breaker states, cache reachable) and the
shared circuit breakers in full.

Printed by the local runtime at start-up; the API's ``GET /health`` serves both (``breakers`` as
``ffe breakers`` lists them).
"""

from __future__ import annotations

from typing import Any

import pybreaker
from pydantic import Field

from ffe.breakers import BreakerStatus, shared_breakers
from ffe.contracts import Contract
from ffe.settings import ProviderSettings
from ffe.steps.preflight import KNOWN_PROVIDERS


class ProviderHealth(Contract):
    provider: str
    configured: bool
    breaker: str = Field(description="closed, open or half-open (shared state, when a breaker table is set)")


class MarketDataHealth(Contract):
    providers: list[ProviderHealth]
    breaker_table: str | None
    cache_table: str | None
    cache_reachable: bool | None


def market_data_health(settings: ProviderSettings, dynamodb: Any | None = None) -> MarketDataHealth:
    """Read-only: no provider is called (that is pre-flight's job)."""
    from ffe.adapters.market_data import dynamodb_table, live_providers

    table = dynamodb or dynamodb_table
    configured = set(live_providers(settings))
    states: dict[str, str] = {}
    if settings.breaker_table:
        for item in table(settings.breaker_table).scan(ConsistentRead=True).get("Items", []):
            states[str(item["name"])] = str(item.get("state", pybreaker.STATE_CLOSED))
    reachable = None
    if settings.bar_cache_table:
        from ffe.adapters.bar_cache import DynamoDBBarCache

        reachable = DynamoDBBarCache(table(settings.bar_cache_table)).reachable()
    return MarketDataHealth(
        providers=[
            ProviderHealth(
                provider=name, configured=name in configured, breaker=states.get(name, pybreaker.STATE_CLOSED)
            )
            for name in KNOWN_PROVIDERS
        ],
        breaker_table=settings.breaker_table,
        cache_table=settings.bar_cache_table,
        cache_reachable=reachable,
    )


def breaker_health(settings: ProviderSettings, dynamodb: Any | None = None) -> list[BreakerStatus]:
    """Every shared breaker of ``settings.stage`` (``ffe.breakers``); none when no breaker table is configured
    (each container then keeps breakers of its own, which nobody else can see)."""
    if not settings.breaker_table:
        return []
    from ffe.adapters.market_data import dynamodb_table

    return shared_breakers((dynamodb or dynamodb_table)(settings.breaker_table), settings.stage)
