"""The providers' shared token buckets against moto's DynamoDB: the limit holds over any interleaving of
several fetchers, the bar cache takes no token, and a provider without a token is skipped, never called."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from ffe.adapters.bar_cache import DynamoDBBarCache
from ffe.adapters.breaker import dynamodb_breakers
from ffe.adapters.rate_limit import Bucket, Limit, RateLimiter, parse_rate_limits
from ffe.adapters.routing import RoutedProvider
from ffe.domain.errors import PermanentError, TransientError
from ffe.domain.models import Timeframe
from ffe.settings import MarketDataSettings, get_settings
from tests.fakes.dynamodb import bar_cache_table, breaker_table
from tests.fakes.live_provider import ScriptedProvider

AS_OF = datetime(2024, 3, 6, 12, 1, tzinfo=UTC)


def _create(ddb: Any, name: str) -> Any:
    return breaker_table(ddb, name)


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.resource("dynamodb", region_name="us-east-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


_tables = iter(range(10**6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    capacity=st.integers(1, 6),
    period=st.sampled_from([1.0, 10.0, 60.0]),
    steps=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 5, allow_nan=False)), min_size=1, max_size=60),
)
def test_no_window_sees_more_takes_than_capacity_plus_refill(ddb, capacity, period, steps) -> None:
    """Four fetchers (four containers: each its own Bucket and its own idea of tat) interleave their takes."""
    table = _create(ddb, f"rl{next(_tables)}")
    limit = Limit(capacity, period)
    clock = Clock()
    fetchers = [Bucket(table, "coinbase", limit, clock) for _ in range(4)]
    taken: list[float] = []
    for who, advance in steps:
        clock.now += advance * limit.interval_s
        if fetchers[who].take() == 0:
            taken.append(clock.now)
    for i, start in enumerate(taken):  # every window that starts at a take
        for j in range(i, len(taken)):
            window = taken[j] - start
            assert j - i + 1 <= capacity + window / limit.interval_s + 1e-6
    table.delete()


def test_a_full_bucket_gives_capacity_at_once_then_one_per_interval(ddb) -> None:
    table, clock = _create(ddb, "burst"), Clock()
    a, b = Bucket(table, "coinbase", Limit(10, 1), clock), Bucket(table, "coinbase", Limit(10, 1), clock)
    assert [(a if i % 2 else b).take() for i in range(10)] == [0.0] * 10
    assert a.take() == pytest.approx(0.1) and b.take() == pytest.approx(0.1)
    clock.now += 0.1
    assert b.take() == 0.0 and a.take() > 0


def test_the_limits_parse_and_bad_ones_are_named() -> None:
    limits = parse_rate_limits("alpha_vantage=5/60s+25/86400s, coinbase=10/1s")
    assert limits["alpha_vantage"] == (Limit(5, 60), Limit(25, 86400)) and limits["coinbase"] == (Limit(10, 1),)
    assert parse_rate_limits("") == {}
    with pytest.raises(ValueError, match="coinbase=ten/1s"):
        parse_rate_limits("coinbase=ten/1s")


def test_a_bad_rate_limits_setting_is_a_bad_environment_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMITS", "coinbase=10/1s,oanda=many")
    with pytest.raises(PermanentError, match=r"bad configuration for MarketDataSettings: RATE_LIMITS: .*oanda=many"):
        get_settings(MarketDataSettings)


@pytest.fixture
def tables(ddb) -> Iterator[dict[str, Any]]:
    breakers, cache = breaker_table(ddb), bar_cache_table(ddb)
    yield {"breakers": breakers, "cache": cache}
    breakers.delete()
    cache.delete()


def router(tables: dict[str, Any], spec: str, clock: Clock, *providers: ScriptedProvider) -> RoutedProvider:
    limiter = RateLimiter(parse_rate_limits(spec), tables["breakers"], max_wait_s=1.0, clock=clock, sleep=clock.sleep)
    return RoutedProvider(
        {p.name: p for p in providers},
        dynamodb_breakers(tables["breakers"], fail_max=2, reset_timeout_s=30),
        DynamoDBBarCache(tables["cache"]),
        limiter=limiter,
    )


def tat(tables: dict[str, Any], key: str) -> Any:
    return tables["breakers"].get_item(Key={"name": key}).get("Item", {}).get("tat")


def test_a_cached_series_takes_no_token(tables) -> None:
    clock, coinbase = Clock(), ScriptedProvider("coinbase")
    routed = router(tables, "coinbase=1/60s", clock, coinbase)
    routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)  # the first fetch fills the cache: one token
    after_first = tat(tables, "rate:coinbase:60s")
    assert len(coinbase.calls) == 1 and after_first is not None
    for minutes in (5, 20, 40):  # the same closed bars: served from the cache, no call, no token
        series = routed.fetch("BTCUSD", Timeframe.H1, AS_OF + timedelta(minutes=minutes), 120)
        assert series.cached_bars == 120 and series.route[-1].outcome == "ok"
    assert len(coinbase.calls) == 1 and tat(tables, "rate:coinbase:60s") == after_first


def test_no_token_falls_to_the_next_provider_and_the_route_says_which_limit(tables) -> None:
    clock = Clock()
    coinbase, av = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage")
    routed = router(tables, "coinbase=1/60s,alpha_vantage=5/60s", clock, coinbase, av)
    routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    series = routed.fetch("ETHUSD", Timeframe.H1, AS_OF, 120)
    assert [(s.provider, s.outcome, s.error) for s in series.route] == [
        ("coinbase", "skipped", "RateLimit"),
        ("alpha_vantage", "ok", None),
    ]
    assert "coinbase rate limit 1/60s reached" in series.route[0].detail
    assert len(coinbase.calls) == 1 and len(av.calls) == 1
    assert routed.breakers("coinbase").current_state == "closed"  # a refused token is no failure


def test_a_chain_without_tokens_fails_retryably_naming_the_provider_and_limit(tables) -> None:
    clock, av = Clock(), ScriptedProvider("alpha_vantage")
    routed = router(tables, "alpha_vantage=5/60s+25/86400s", clock, av)
    series = [(a, tf) for tf in (Timeframe.H1, Timeframe.H4, Timeframe.D1) for a in ("SPY", "AAPL", "MSFT")]
    for asset, timeframe in series[:5]:
        routed.fetch(asset, timeframe, AS_OF, 120)
    with pytest.raises(TransientError) as refused:
        routed.fetch(*series[5], AS_OF, 120)
    assert "alpha_vantage: skipped (RateLimit: alpha_vantage rate limit 5/60s reached" in str(refused.value)
    assert refused.value.context["retry_after_seconds"] == 12
    assert len(av.calls) == 5
    clock.now += 12 * 4  # four tokens refilled: the daily bucket (25) still has 20
    for asset, timeframe in series[5:]:
        routed.fetch(asset, timeframe, AS_OF, 120)
    assert len(av.calls) == 9


def test_an_open_breaker_spends_no_token(tables) -> None:
    clock, coinbase = Clock(), ScriptedProvider("coinbase")
    coinbase.failure = TransientError("coinbase 503", provider="coinbase", http_status=503)
    routed = router(tables, "coinbase=3/60s", clock, coinbase)
    for asset in ("BTCUSD", "ETHUSD"):  # two failures open the breaker (fail_max=2): two tokens spent
        with pytest.raises(TransientError):
            routed.fetch(asset, Timeframe.H1, AS_OF, 120)
    spent = tat(tables, "rate:coinbase:60s")
    for timeframe in (Timeframe.H4, Timeframe.D1, Timeframe.M15):
        with pytest.raises(TransientError, match="CircuitOpen"):
            routed.fetch("BTCUSD", timeframe, AS_OF, 120)
    assert tat(tables, "rate:coinbase:60s") == spent and len(coinbase.calls) == 2


def test_ffe_breakers_lists_breakers_not_token_buckets(tables) -> None:
    from ffe.breakers import shared_breakers

    clock = Clock()
    router(tables, "coinbase=2/1s", clock, ScriptedProvider("coinbase")).fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert tat(tables, "rate:coinbase:1s") is not None
    assert not [b for b in shared_breakers(tables["breakers"], "dev") if b.name.startswith("rate:")]
