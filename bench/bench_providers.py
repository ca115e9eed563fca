"""Provider-path costs: parse + validate per bar, cached vs uncached fetch, circuit-breaker overhead.

Prints figures; asserts nothing. Provider responses are recorded once from the fake servers in
tests/fakes (the documented wire formats) and then replayed byte for byte, so the timings cover the
provider's parsing and validation, not the fake's generation. DynamoDB is moto's in-process
implementation: the cache and breaker figures show the code path's cost, not AWS latency.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the route log line per fetch would drown the figures

from ffe.adapters.bar_cache import DynamoDBBarCache
from ffe.adapters.breaker import DynamoDBBreakerStorage, dynamodb_breakers, make_breaker
from ffe.adapters.providers.alpha_vantage import AlphaVantageProvider
from ffe.adapters.providers.coinbase import CoinbaseProvider
from ffe.adapters.providers.oanda import OandaProvider
from ffe.adapters.routing import RoutedProvider
from ffe.adapters.synthetic import synthetic_bars
from ffe.domain.models import Timeframe
from ffe.domain.series import validate_series
from tests.fakes.alpha_vantage_server import FakeAlphaVantage
from tests.fakes.coinbase_server import FakeCoinbaseMarketData
from tests.fakes.oanda_server import FakeOandaMarketData

END = datetime(2024, 3, 6, 12, tzinfo=UTC)  # a Wednesday
N = 1000


def history(asset: str, timeframe: Timeframe) -> list:  # type: ignore[type-arg]
    return synthetic_bars(asset, timeframe, END, 3000)


class Replay:
    """Record the fake's responses once, then serve the same bytes again (no generation cost)."""

    def __init__(self, server: Callable[[httpx.Request], httpx.Response]) -> None:
        self.server, self.recorded = server, {}  # type: ignore[var-annotated]
        self.requests = self.bytes = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = str(request.url)
        self.requests += 1
        if key not in self.recorded:
            response = self.server(request)
            self.recorded[key] = (response.status_code, response.read(), dict(response.headers))
        status, body, headers = self.recorded[key]
        self.bytes += len(body)
        return httpx.Response(status, content=body, headers=headers)


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs)


def providers() -> dict[str, tuple[object, str, Timeframe, datetime]]:
    av = AlphaVantageProvider(
        httpx.Client(transport=httpx.MockTransport(Replay(FakeAlphaVantage(history, "k")))), lambda: {"api_key": "k"}
    )
    cb = CoinbaseProvider(httpx.Client(transport=httpx.MockTransport(Replay(FakeCoinbaseMarketData(history)))))
    oanda = OandaProvider(
        httpx.Client(transport=httpx.MockTransport(Replay(FakeOandaMarketData(history, token="t", account_id="a")))),
        lambda: {"token": "t", "account_id": "a", "environment": "practice"},
    )
    return {
        "alpha_vantage (FX 1h)": (av, "EURUSD", Timeframe.H1, END - timedelta(hours=N * 1.6)),
        "coinbase (crypto 1h)": (cb, "BTCUSD", Timeframe.H1, END - timedelta(hours=N)),
        "oanda (FX 1h)": (oanda, "EURUSD", Timeframe.H1, END - timedelta(hours=N * 1.45)),
    }


print(f"parse + validate ~{N} bars per provider (recorded responses replayed; best of 5)")
for label, (provider, asset, tf, start) in providers().items():
    bars = provider.candles(asset, tf, start, END)  # type: ignore[attr-defined]  # records the responses

    def parse_and_validate(p=provider, a=asset, t=tf, s=start) -> None:  # type: ignore[no-untyped-def]
        validate_series(p.candles(a, t, s, END), END)

    seconds = best_of(parse_and_validate)
    print(f"  {label:<22} {len(bars):5d} bars  {seconds * 1e6 / len(bars):7.1f} µs/bar  ({seconds * 1000:.1f} ms)")

with mock_aws():
    ddb = boto3.resource("dynamodb", region_name="us-east-1")

    def table(name: str, *keys: tuple[str, str]) -> object:
        return ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in keys],
            KeySchema=[
                {"AttributeName": k, "KeyType": kind} for (k, _), kind in zip(keys, ("HASH", "RANGE"), strict=False)
            ],
        )

    breaker_table = table("b", ("name", "S"))
    cache_table = table("c", ("series", "S"), ("t", "N"))

    wire = Replay(FakeCoinbaseMarketData(history))
    cb = CoinbaseProvider(httpx.Client(transport=httpx.MockTransport(wire)))
    as_of = END + timedelta(minutes=1)

    def measured(fetch: Callable[[], object]) -> str:
        """Wall time of one fetch and what it cost the provider (requests, bytes on the wire)."""
        requests, size = wire.requests, wire.bytes
        t0 = time.perf_counter()
        fetch()
        elapsed = time.perf_counter() - t0
        return f"{elapsed * 1000:7.1f} ms  {wire.requests - requests} provider requests, {wire.bytes - size:6d} bytes"

    print("\nfetch path for 120 bars of BTCUSD 1h through the router (moto DynamoDB)")
    uncached = RoutedProvider({"coinbase": cb}, dynamodb_breakers(breaker_table, 5, 60))
    uncached.fetch("BTCUSD", Timeframe.H1, as_of, 120)
    cached = RoutedProvider({"coinbase": cb}, dynamodb_breakers(breaker_table, 5, 60), DynamoDBBarCache(cache_table))
    hour = timedelta(hours=1)
    print(f"  no cache, every cycle  {measured(lambda: uncached.fetch('BTCUSD', Timeframe.H1, as_of, 120))}")
    print(f"  cold cache (fill)      {measured(lambda: cached.fetch('BTCUSD', Timeframe.H1, as_of - hour, 120))}")
    result: list = []  # type: ignore[type-arg]
    line = measured(lambda: result.append(cached.fetch("BTCUSD", Timeframe.H1, as_of, 120)))
    print(f"  next cycle (1 new bar) {line}  hit rate {100 * result[0].cached_bars / len(result[0].bars):.1f} %")
    print(f"  cycle fully cached     {measured(lambda: cached.fetch('BTCUSD', Timeframe.H1, as_of, 120))}")

    print("\ncircuit breaker overhead per call (breaker.call(noop); median of 2000)")
    shared = make_breaker("d", DynamoDBBreakerStorage(breaker_table, "d"))
    for label, breaker in (("in-memory storage", make_breaker("m")), ("DynamoDB storage", shared)):
        samples = []
        for _ in range(2000 if label.startswith("in") else 300):
            t0 = time.perf_counter()
            breaker.call(lambda: None)
            samples.append(time.perf_counter() - t0)
        print(f"  {label:<22} {statistics.median(samples) * 1e6:7.1f} µs")
