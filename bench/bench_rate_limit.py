"""What the providers' shared token buckets add to a fetch: DynamoDB calls and time, beside the same fetch
without a limiter, in the same run.

Prints figures; asserts nothing. DynamoDB is moto's in-process implementation: the figures show the code path's
cost and the number of DynamoDB calls (each a network round trip on AWS), not AWS latency. Medians of 5 repeats.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from ffe.adapters.bar_cache import DynamoDBBarCache
from ffe.adapters.breaker import dynamodb_breakers
from ffe.adapters.rate_limit import RateLimiter, parse_rate_limits
from ffe.adapters.routing import RoutedProvider
from ffe.domain.models import Timeframe
from tests.fakes.live_provider import ScriptedProvider

AS_OF = datetime(2024, 3, 6, 12, 1, tzinfo=UTC)
REPEATS, FETCHES = 5, 40


def tables(ddb: Any, suffix: str) -> tuple[Any, Any]:
    breakers = ddb.create_table(
        TableName=f"breakers{suffix}",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
    )
    cache = ddb.create_table(
        TableName=f"bars{suffix}",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "series", "AttributeType": "S"},
            {"AttributeName": "t", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "series", "KeyType": "HASH"}, {"AttributeName": "t", "KeyType": "RANGE"}],
    )
    return breakers, cache


def run(ddb: Any, limited: bool, suffix: str) -> tuple[float, float, float]:
    """(median ms per fetch that calls the provider, median ms per cached fetch, DynamoDB calls per calling fetch)"""
    calls = {"n": 0}

    def count(**_: Any) -> None:
        calls["n"] += 1

    ddb.meta.client.meta.events.register("before-call.dynamodb", count)
    breakers, cache = tables(ddb, suffix)
    limiter = RateLimiter(parse_rate_limits("coinbase=100000/1s"), breakers) if limited else None
    routed = RoutedProvider(
        {"coinbase": ScriptedProvider("coinbase")},
        dynamodb_breakers(breakers, 5, 60),
        DynamoDBBarCache(cache),
        limiter=limiter,
    )
    routed.fetch("BTCUSD", Timeframe.M15, AS_OF, 120)  # the cache holds the series up to AS_OF
    calling, cached, per_fetch = [], [], []
    for r in range(REPEATS):
        start, before = time.perf_counter(), calls["n"]
        for i in range(FETCHES):  # each 15 minutes later: one new bar, one provider call, one token
            routed.fetch("BTCUSD", Timeframe.M15, AS_OF + timedelta(minutes=15 * (r * FETCHES + i + 1)), 120)
        calling.append((time.perf_counter() - start) / FETCHES * 1000)
        per_fetch.append((calls["n"] - before) / FETCHES)
        last = AS_OF + timedelta(minutes=15 * (r + 1) * FETCHES)
        start = time.perf_counter()
        for _ in range(FETCHES):  # nothing new has closed: the cache answers, no call, no token
            routed.fetch("BTCUSD", Timeframe.M15, last + timedelta(minutes=5), 120)
        cached.append((time.perf_counter() - start) / FETCHES * 1000)
    ddb.meta.client.meta.events.unregister("before-call.dynamodb", count)
    return statistics.median(calling), statistics.median(cached), statistics.median(per_fetch)


def show(what: str, ref: float, new: float, unit: str) -> None:
    print(f"{what:<44} {new:8.2f} {unit}   no limiter {ref:8.2f} {unit}   ratio {new / ref:5.2f}")


def main() -> None:
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        base = run(ddb, False, "a")
        limited = run(ddb, True, "b")
    print(f"token buckets in moto DynamoDB, median of {REPEATS} x {FETCHES} fetches")
    show("fetch that calls the provider", base[0], limited[0], "ms")
    show("DynamoDB calls per such fetch", base[2], limited[2], "  ")
    show("fetch the cache answers (takes no token)", base[1], limited[1], "ms")


if __name__ == "__main__":
    main()
