"""Routing by asset class, fallbacks, breakers and the bar cache (DynamoDB in moto)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pybreaker
import pytest
from moto import mock_aws

from ffe.adapters.bar_cache import DynamoDBBarCache
from ffe.adapters.breaker import Cooldowns, DynamoDBBreakerStorage, dynamodb_breakers, make_breaker
from ffe.adapters.routing import RoutedProvider
from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.errors import AuthError, InvalidInputError, RateLimitedError, TransientError
from ffe.domain.models import AssetClass, Timeframe
from tests.fakes.dynamodb import bar_cache_table, breaker_table
from tests.fakes.live_provider import ScriptedProvider

AS_OF = datetime(2024, 3, 6, 12, 1, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def tables() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        breakers, cache = breaker_table(ddb), bar_cache_table(ddb)
        yield {"breakers": breakers, "cache": cache}


def router(
    tables: dict[str, Any], *providers: ScriptedProvider, fail_max: int = 2, cache: bool = True
) -> RoutedProvider:
    return RoutedProvider(
        {p.name: p for p in providers},
        dynamodb_breakers(tables["breakers"], fail_max=fail_max, reset_timeout_s=30),
        DynamoDBBarCache(tables["cache"]) if cache else None,
    )


def test_each_asset_class_takes_its_chain(tables) -> None:
    coinbase, oanda, av = ScriptedProvider("coinbase"), ScriptedProvider("oanda"), ScriptedProvider("alpha_vantage")
    routed = router(tables, coinbase, oanda, av)
    assert routed.chain("BTCUSD") == ["coinbase", "alpha_vantage"]
    assert routed.chain("EURUSD") == ["oanda", "alpha_vantage"]
    assert routed.chain("SPY") == ["alpha_vantage"]
    series = routed.fetch("EURUSD", Timeframe.H1, AS_OF, 120)
    assert [s.provider for s in series.route] == ["oanda"] and series.route[0].outcome == "ok"
    assert len(series.bars) == 120 and series.bars[-1].time + timedelta(hours=1) <= AS_OF
    assert not series.simulated_clock and not series.synthetic
    assert oanda.calls and not coinbase.calls and not av.calls


def test_a_universe_file_asset_takes_its_classs_chain_and_the_providers_are_told_its_class(tables) -> None:
    coinbase, oanda, av = ScriptedProvider("coinbase"), ScriptedProvider("oanda"), ScriptedProvider("alpha_vantage")
    for provider in (coinbase, oanda, av):
        provider.bars = lambda asset, tf, end: synthetic_bars("BTCUSD", tf, end, 300)  # SOLUSD's, say
    routed = router(tables, coinbase, oanda, av)
    with pytest.raises(InvalidInputError, match="unknown asset 'SOLUSD'"):
        routed.chain("SOLUSD")  # the built-in table does not know it ...
    assert routed.chain("SOLUSD", AssetClass.CRYPTO) == ["coinbase", "alpha_vantage"]  # ... its universe file does
    series = routed.fetch("SOLUSD", Timeframe.H1, AS_OF, 120, AssetClass.CRYPTO)
    assert [s.provider for s in series.route] == ["coinbase"] and len(series.bars) == 120
    assert coinbase.classes_given == [AssetClass.CRYPTO] and not oanda.calls
    # a failing first provider hands the class on to the next (Alpha Vantage builds its query from it)
    coinbase.failure = TransientError("coinbase server error", provider="coinbase", http_status=503)
    later = AS_OF + timedelta(hours=1)
    series = routed.fetch("SOLUSD", Timeframe.H1, later, 120, AssetClass.CRYPTO)
    assert series.dataset.startswith("alpha_vantage:") and av.classes_given == [AssetClass.CRYPTO]


def test_failing_provider_falls_back_and_the_route_says_why(tables) -> None:
    coinbase, av = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage")
    coinbase.failure = TransientError("coinbase server error", provider="coinbase", http_status=503)
    series = router(tables, coinbase, av).fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert [(s.provider, s.outcome, s.error) for s in series.route] == [
        ("coinbase", "failed", "TransientError"),
        ("alpha_vantage", "ok", None),
    ]
    assert "http_status=503" in series.route[0].detail
    assert series.dataset.startswith("alpha_vantage:")


def test_unconfigured_provider_is_left_out_of_the_chain(tables) -> None:
    routed = router(tables, ScriptedProvider("alpha_vantage"))
    assert routed.chain("BTCUSD") == ["alpha_vantage"]
    with pytest.raises(InvalidInputError, match="no configured provider serves fx"):
        router(tables, ScriptedProvider("coinbase")).fetch("EURUSD", Timeframe.H1, AS_OF, 120)


@pytest.mark.parametrize(
    ("errors", "raised"),
    [
        ((TransientError("down"), AuthError("bad key")), TransientError),
        ((RateLimitedError("slow down", retry_after_seconds=30), AuthError("bad key")), TransientError),
        ((AuthError("bad key"), InvalidInputError("garbage")), AuthError),
        ((InvalidInputError("garbage"), InvalidInputError("garbage")), InvalidInputError),
    ],
)
def test_all_providers_failing_raises_the_retryable_error_first(tables, errors, raised) -> None:
    first, second = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage")
    first.failure, second.failure = errors
    with pytest.raises(raised, match="every provider failed for BTCUSD 1h: coinbase: failed") as info:
        router(tables, first, second).fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert info.value.context["asset"] == "BTCUSD"


def test_retry_after_is_honoured_across_containers(tables) -> None:
    # Given Coinbase answers 429 with Retry-After: 30
    coinbase, av = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage")
    coinbase.failure = RateLimitedError("slow down", retry_after_seconds=30)
    now = [AS_OF]

    def routed() -> RoutedProvider:  # a fresh "container" on the same tables each time
        return RoutedProvider(
            {"coinbase": coinbase, "alpha_vantage": av},
            dynamodb_breakers(tables["breakers"], fail_max=5, reset_timeout_s=30),
            cooldowns=Cooldowns(tables["breakers"]),
            clock=lambda: now[0],
        )

    first = routed().fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert [(s.provider, s.outcome) for s in first.route] == [("coinbase", "failed"), ("alpha_vantage", "ok")]
    # When another container fetches within the 30 s, Then Coinbase is not even asked
    calls = len(coinbase.calls)
    second = routed().fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert second.route[0].outcome == "skipped" and second.route[0].error == "RateLimited"
    assert len(coinbase.calls) == calls
    # And after it, Coinbase is tried again
    now[0] = AS_OF + timedelta(seconds=31)
    coinbase.failure = None
    assert routed().fetch("BTCUSD", Timeframe.H1, AS_OF, 120).route[0].outcome == "ok"


def test_bad_bars_from_one_provider_fall_back_to_the_next(tables) -> None:
    coinbase, av = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage")
    good = coinbase.bars
    coinbase.bars = lambda asset, tf, end: [*good(asset, tf, end)[:-1], replace(good(asset, tf, end)[-1], close=-1.0)]
    series = router(tables, coinbase, av).fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert series.route[0].outcome == "failed" and "fail validation" in series.route[0].detail
    assert series.route[1].provider == "alpha_vantage"


def test_bars_still_open_at_as_of_are_dropped(tables) -> None:
    coinbase = ScriptedProvider("coinbase")
    real = coinbase.bars
    coinbase.bars = lambda asset, tf, end: real(asset, tf, end + timedelta(hours=1))  # includes the open bar
    series = router(tables, coinbase, cache=False).fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert series.bars[-1].time == datetime(2024, 3, 6, 11, tzinfo=UTC)


def test_breaker_opens_after_n_failures_skips_then_half_opens_and_recovers(tables) -> None:
    coinbase, av = ScriptedProvider("coinbase"), ScriptedProvider("alpha_vantage")
    coinbase.failure = TransientError("timeout")
    routed = router(tables, coinbase, av, fail_max=2)
    routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)  # failure 1
    routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)  # failure 2: trips
    assert routed.breakers("coinbase").current_state == "open"
    calls = len(coinbase.calls)
    third = routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert third.route[0].outcome == "skipped" and len(coinbase.calls) == calls  # straight to the next provider
    # When the cool-down has passed, Then one trial call is let through and success closes the breaker
    storage = DynamoDBBreakerStorage(tables["breakers"], "coinbase")
    storage.opened_at = datetime.now(UTC) - timedelta(seconds=31)
    coinbase.failure = None
    fourth = routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert fourth.route[0].outcome == "ok" and routed.breakers("coinbase").current_state == "closed"


def test_breaker_state_is_shared_between_containers(tables) -> None:
    # Given two containers, each with its own breaker object on the same table item
    first = make_breaker("oanda", DynamoDBBreakerStorage(tables["breakers"], "oanda"), fail_max=2)
    second = make_breaker("oanda", DynamoDBBreakerStorage(tables["breakers"], "oanda"), fail_max=2)

    def boom() -> None:
        raise TransientError("down")

    # When one failure happens in each container
    for breaker in (first, second):
        with pytest.raises(TransientError):
            breaker.call(boom)
    # Then the shared count tripped the breaker, and the other container sees it open too
    assert second.current_state == "open"
    with pytest.raises(pybreaker.CircuitBreakerError):
        first.call(lambda: None)


def test_refused_request_does_not_count_against_the_provider(tables) -> None:
    breaker = make_breaker("coinbase", DynamoDBBreakerStorage(tables["breakers"], "coinbase"), fail_max=1)

    def not_found() -> None:
        raise InvalidInputError("NotFound", http_status=404)

    with pytest.raises(InvalidInputError):
        breaker.call(not_found)
    assert breaker.current_state == "closed"


def test_cache_serves_known_bars_and_fetches_only_new_ones(tables) -> None:
    coinbase = ScriptedProvider("coinbase")
    routed = router(tables, coinbase)
    cold = routed.fetch("BTCUSD", Timeframe.H1, AS_OF, 120)
    assert cold.cached_bars == 0 and coinbase.calls[-1][2] == AS_OF - timedelta(hours=240)  # 2x the window
    # When the next hourly cycle runs
    warm = routed.fetch("BTCUSD", Timeframe.H1, AS_OF + timedelta(hours=1), 120)
    assert coinbase.calls[-1][2] == cold.bars[-1].time + timedelta(hours=1)  # asked only for what is new
    assert warm.cached_bars == 119 and len(warm.bars) == 120  # 99 % hits in steady state
    assert warm.bars[:-1] == cold.bars[1:]
    # And a rerun at the same as_of needs no provider call at all
    calls = len(coinbase.calls)
    again = routed.fetch("BTCUSD", Timeframe.H1, AS_OF + timedelta(hours=1), 120)
    assert len(coinbase.calls) == calls and again.cached_bars == 120 and again.bars == warm.bars


def test_cache_round_trips_bars_exactly(tables) -> None:
    cache = DynamoDBBarCache(tables["cache"])
    bars = ScriptedProvider("x").bars("ETHUSD", Timeframe.M15, AS_OF)[-10:]
    cache.put("x", "ETHUSD", Timeframe.M15, bars)
    assert cache.recent("x", "ETHUSD", Timeframe.M15, AS_OF, 10) == bars
    assert cache.recent("x", "ETHUSD", Timeframe.M15, bars[4].time + timedelta(minutes=15), 3) == bars[2:5]
    assert cache.recent("y", "ETHUSD", Timeframe.M15, AS_OF, 10) == []
    assert cache.reachable()


def test_chains_follow_the_documented_order() -> None:
    from ffe.adapters.routing import CHAINS

    assert CHAINS == {
        AssetClass.CRYPTO: ("coinbase", "alpha_vantage"),
        AssetClass.FX: ("oanda", "alpha_vantage"),
        AssetClass.EQUITY: ("alpha_vantage",),
    }
