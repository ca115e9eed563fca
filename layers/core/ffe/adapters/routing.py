"""Live market data: route by asset class through a fallback chain of providers.

For each provider in the asset class's chain: skip it if its circuit breaker is open; otherwise read
the cached bars, ask the provider only for newer ones, keep the bars that had closed by ``as_of``,
validate the series and cache it. With a ``RateLimiter``, a provider is called only after the bar cache
(read first) and a token of its shared bucket (``ffe.adapters.rate_limit``); no token within the short wait
skips to the next provider in the chain, and a chain with none left fails retryably. The first provider that
succeeds wins; every attempt is recorded in the route, which travels with the data into the decision record
and the logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pybreaker

from ffe.adapters.bar_cache import DynamoDBBarCache
from ffe.adapters.breaker import BreakerFactory, Cooldowns
from ffe.adapters.rate_limit import RateLimiter
from ffe.domain.errors import AuthError, FfeError, InvalidInputError, RateLimitedError, TransientError
from ffe.domain.models import AssetClass, Bar, Timeframe
from ffe.domain.ports import FetchedSeries, LiveProvider, RouteStep
from ffe.domain.series import validate_series
from ffe.domain.universe import class_of
from ffe.observability import logger

# crypto -> Coinbase then Alpha Vantage; FX -> Oanda then Alpha Vantage; equities -> Alpha Vantage.
CHAINS: dict[AssetClass, tuple[str, ...]] = {
    AssetClass.CRYPTO: ("coinbase", "alpha_vantage"),
    AssetClass.FX: ("oanda", "alpha_vantage"),
    AssetClass.EQUITY: ("alpha_vantage",),
}


class RoutedProvider:
    name = "live"

    def __init__(
        self,
        providers: Mapping[str, LiveProvider],
        breakers: BreakerFactory,
        cache: DynamoDBBarCache | None = None,
        chains: Mapping[AssetClass, Sequence[str]] = CHAINS,
        cooldowns: Cooldowns | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        limiter: RateLimiter | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.breakers = breakers
        self.cache = cache
        self.chains = chains
        self.cooldowns = cooldowns or Cooldowns()
        self.clock = clock
        self.limiter = limiter

    def chain(self, asset: str, asset_class: AssetClass | None = None) -> list[str]:
        """The providers this asset would be fetched from, in order (configured ones only); its class is the universe
        file's, else the built-in table's."""
        return [name for name in self.chains[class_of(asset, asset_class)] if name in self.providers]

    def fetch(
        self, asset: str, timeframe: Timeframe, as_of: datetime, lookback: int, asset_class: AssetClass | None = None
    ) -> FetchedSeries:
        route: list[RouteStep] = []
        errors: list[FfeError] = []
        chain = self.chain(asset, asset_class)
        if not chain:
            klass = class_of(asset, asset_class)
            raise InvalidInputError(f"no configured provider serves {klass} assets", asset=asset)
        for name in chain:
            until = self.cooldowns.until(name)
            if until is not None and until > self.clock():
                route.append(RouteStep(name, "skipped", "RateLimited", f"Retry-After until {until.isoformat()}"))
                continue
            breaker = self.breakers(name)
            try:
                if self.limiter is None:
                    provider = self.providers[name]
                    bars, cached = breaker.call(
                        self._fetch_from, provider, asset, timeframe, as_of, lookback, asset_class
                    )
                else:
                    provider = self.providers[name]
                    bars, cached = self._fetch_limited(
                        breaker, provider, asset, timeframe, as_of, lookback, asset_class
                    )
            except pybreaker.CircuitBreakerError:
                route.append(RouteStep(name, "skipped", "CircuitOpen", "circuit breaker open"))
                continue
            except _NoTokenError as refusal:  # the provider was not called: its breaker and Retry-After are untouched
                route.append(RouteStep(name, "skipped", "RateLimit", str(refusal.error)))
                errors.append(refusal.error)
                continue
            except FfeError as exc:
                route.append(RouteStep(name, "failed", type(exc).__name__, str(exc)))
                errors.append(exc)
                if isinstance(exc, RateLimitedError) and exc.retry_after_seconds:
                    self.cooldowns.hold(name, self.clock() + timedelta(seconds=exc.retry_after_seconds))
                continue
            route.append(RouteStep(name, "ok", detail=f"{len(bars) - cached} new bars, {cached} from cache"))
            _log_route(asset, timeframe, route)
            return FetchedSeries(
                bars,
                f"{name}:{asset}:{timeframe}",
                synthetic=False,
                simulated_clock=False,
                route=tuple(route),
                cached_bars=cached,
            )
        _log_route(asset, timeframe, route)
        raise _exhausted(asset, timeframe, route, errors)

    def _fetch_from(
        self,
        provider: LiveProvider,
        asset: str,
        timeframe: Timeframe,
        as_of: datetime,
        lookback: int,
        asset_class: AssetClass | None = None,
    ) -> tuple[list[Bar], int]:
        cached = self.cache.recent(provider.name, asset, timeframe, as_of, lookback) if self.cache else []
        return self._complete(provider, asset, timeframe, as_of, lookback, cached, asset_class)

    def _fetch_limited(
        self,
        breaker: pybreaker.CircuitBreaker,
        provider: LiveProvider,
        asset: str,
        timeframe: Timeframe,
        as_of: datetime,
        lookback: int,
        asset_class: AssetClass | None = None,
    ) -> tuple[list[Bar], int]:
        """``_fetch_from`` with a token taken between the cache read and the provider call, outside the breaker
        (a refused token is no failure of the provider, and no success either)."""
        assert self.limiter is not None
        try:
            cached = self.cache.recent(provider.name, asset, timeframe, as_of, lookback) if self.cache else []
        except FfeError as exc:  # counted against the provider as when it is read inside the breaker
            breaker.call(_raise, exc)
            raise
        if _needs_call(cached, timeframe, as_of, lookback) and not _open(breaker):
            try:
                self.limiter.acquire(provider.name)
            except RateLimitedError as exc:
                raise _NoTokenError(exc) from exc
        return breaker.call(self._complete, provider, asset, timeframe, as_of, lookback, cached, asset_class)

    def _complete(
        self,
        provider: LiveProvider,
        asset: str,
        timeframe: Timeframe,
        as_of: datetime,
        lookback: int,
        cached: list[Bar],
        asset_class: AssetClass | None = None,
    ) -> tuple[list[Bar], int]:
        start = _start(cached, timeframe, as_of, lookback)
        fresh: list[Bar] = []
        if start + timeframe.duration <= as_of:  # a newer bar may have closed since the last cached one
            fetched = provider.candles(asset, timeframe, start, as_of, asset_class)
            fresh = [b for b in fetched if start <= b.time and b.time + timeframe.duration <= as_of]
        bars = (cached + fresh)[-lookback:]
        try:
            validate_series(bars, as_of)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"{provider.name} sent bars that fail validation: {exc}",
                provider=provider.name,
                asset=asset,
                timeframe=timeframe,
            ) from exc
        if self.cache and fresh:
            self.cache.put(provider.name, asset, timeframe, fresh)
        return bars, max(0, len(bars) - len(fresh))


class _NoTokenError(Exception):
    """No token of the provider's shared bucket within the wait; ``error`` says which limit."""

    def __init__(self, error: RateLimitedError) -> None:
        super().__init__(str(error))
        self.error = error


def _start(cached: list[Bar], timeframe: Timeframe, as_of: datetime, lookback: int) -> datetime:
    """The first bar to ask the provider for. With nothing cached, twice the look-back window (providers page
    through it), so market closures (FX weekends, exchange holidays) still leave ``lookback`` bars."""
    return cached[-1].time + timeframe.duration if cached else as_of - 2 * lookback * timeframe.duration


def _needs_call(cached: list[Bar], timeframe: Timeframe, as_of: datetime, lookback: int) -> bool:
    """Whether ``_complete`` will call the provider: a newer bar may have closed since the last cached one."""
    return _start(cached, timeframe, as_of, lookback) + timeframe.duration <= as_of


def _open(breaker: pybreaker.CircuitBreaker) -> bool:
    """Open and still cooling down: the call will be refused without reaching the provider (no token spent)."""
    if breaker.current_state != pybreaker.STATE_OPEN:
        return False
    opened_at = breaker._state_storage.opened_at
    return opened_at is not None and datetime.now(UTC) < opened_at + timedelta(seconds=breaker.reset_timeout)


def _raise(exc: BaseException) -> None:
    raise exc


def _log_route(asset: str, timeframe: Timeframe, route: list[RouteStep]) -> None:
    steps = [{"provider": s.provider, "outcome": s.outcome, "error": s.error, "detail": s.detail} for s in route]
    fallbacks = sum(1 for s in route if s.outcome != "ok")
    logger.info(
        "market data route", extra={"asset": asset, "timeframe": str(timeframe), "route": steps, "fallbacks": fallbacks}
    )


def _exhausted(asset: str, timeframe: Timeframe, route: list[RouteStep], errors: list[FfeError]) -> FfeError:
    """Every provider failed: retry-worthy if any failure was, else the most telling permanent error."""
    summary = "; ".join(
        f"{s.provider}: {s.outcome} ({s.error}{': ' + s.detail if s.error == 'RateLimit' else ''})" for s in route
    )
    message = f"every provider failed for {asset} {timeframe}: {summary}"
    context = {"asset": asset, "timeframe": timeframe}
    if not errors or any(isinstance(e, TransientError) for e in errors):  # includes RateLimitedError
        retry_after = max((e.retry_after_seconds or 0 for e in errors if isinstance(e, RateLimitedError)), default=0)
        return TransientError(message, retry_after_seconds=retry_after or None, **context)
    if any(isinstance(e, AuthError) for e in errors):
        return AuthError(message, **context)
    return InvalidInputError(message, **context)
