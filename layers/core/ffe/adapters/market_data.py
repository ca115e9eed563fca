"""Building the market-data provider a function uses, once per container."""

from __future__ import annotations

from typing import Any

from ffe.adapters.bar_cache import DynamoDBBarCache
from ffe.adapters.breaker import BreakerFactory, Cooldowns, dynamodb_breakers, make_breaker
from ffe.adapters.providers.base import Credentials, shared_client
from ffe.adapters.rate_limit import DEFAULT_RATE_LIMITS, RateLimiter, parse_rate_limits
from ffe.adapters.replay import ReplayProvider
from ffe.adapters.routing import RoutedProvider
from ffe.containers import container_cached
from ffe.domain.ports import LiveProvider, MarketDataProvider
from ffe.settings import MarketDataSettings, ProviderSettings
from ffe.stage_data import refuse_simulated_provider


@container_cached
def get_provider(settings: MarketDataSettings) -> MarketDataProvider:
    """``replay``: bundled history; ``live``: the routed Alpha Vantage / Coinbase / Oanda chain;
    ``scenario``: the files ``ffe run --bars`` uploaded to the local stack. staging and prod take ``live`` only
    (``ffe.stage_data.refuse_simulated_provider``)."""
    refuse_simulated_provider(settings.stage, settings.market_data_provider)
    if settings.market_data_provider == "replay":
        return ReplayProvider()
    if settings.market_data_provider == "scenario":
        from ffe.adapters.scenario import ScenarioProvider

        return ScenarioProvider.from_s3(settings.scenario_uri or "")  # the settings require the URI
    cooldowns = Cooldowns(dynamodb_table(settings.breaker_table) if settings.breaker_table else None)
    providers = live_providers(settings)
    return RoutedProvider(
        providers, breakers(settings), bar_cache(settings), cooldowns=cooldowns, limiter=limiter(settings)
    )


def limiter(settings: ProviderSettings) -> RateLimiter | None:
    """The providers' shared token buckets, items in the breaker table (per container without one)."""
    spec = DEFAULT_RATE_LIMITS if settings.rate_limits is None else settings.rate_limits
    limits = parse_rate_limits(spec)
    if not limits:
        return None
    table = dynamodb_table(settings.breaker_table) if settings.breaker_table else None
    return RateLimiter(limits, table, max_wait_s=settings.rate_limit_wait_s)


def live_providers(settings: ProviderSettings) -> dict[str, LiveProvider]:
    """The configured live providers by name (one pooled HTTP client shared by all of them)."""
    from ffe.adapters.providers.alpha_vantage import AlphaVantageProvider
    from ffe.adapters.providers.coinbase import CoinbaseProvider
    from ffe.adapters.providers.oanda import OandaProvider

    client = shared_client()
    providers: dict[str, LiveProvider] = {}
    if settings.coinbase_enabled:
        providers["coinbase"] = CoinbaseProvider(client)
    if settings.oanda_secret_arn:
        providers["oanda"] = OandaProvider(client, secret_credentials(settings.oanda_secret_arn))
    if settings.alpha_vantage_secret_arn:
        providers["alpha_vantage"] = AlphaVantageProvider(client, secret_credentials(settings.alpha_vantage_secret_arn))
    return providers


def secret_credentials(arn: str) -> Credentials:
    """Read the JSON secret at call time through Powertools (cached 5 min), never keep it in settings."""

    def read() -> dict[str, str]:
        from aws_lambda_powertools.utilities import parameters

        secret: dict[str, str] = parameters.get_secret(arn, transform="json", max_age=300)
        return secret

    return read


def breakers(settings: ProviderSettings) -> BreakerFactory:
    if settings.breaker_table:
        table = dynamodb_table(settings.breaker_table)
        return dynamodb_breakers(table, settings.breaker_fail_max, settings.breaker_reset_timeout_s)
    built: dict[str, Any] = {}
    return lambda name: built.setdefault(
        name, make_breaker(name, fail_max=settings.breaker_fail_max, reset_timeout_s=settings.breaker_reset_timeout_s)
    )


def bar_cache(settings: ProviderSettings) -> DynamoDBBarCache | None:
    return DynamoDBBarCache(dynamodb_table(settings.bar_cache_table)) if settings.bar_cache_table else None


def dynamodb_table(name: str) -> Any:
    import boto3

    return boto3.resource("dynamodb").Table(name)
