"""Per-decision compute: staleness gate + three strategies + naive-router blend, in microseconds.

Prints figures; asserts nothing. Uses the bundled real BTCUSD hourly series (120-bar look-back).
"""

from __future__ import annotations

import statistics
import timeit
from datetime import UTC, datetime

from ffe.adapters.replay import ReplayProvider
from ffe.domain.ensemble import naive_router
from ffe.domain.models import Timeframe
from ffe.domain.staleness import assess_staleness
from ffe.domain.strategies import StrategyParams, score_all

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
PARAMS = StrategyParams()
bars = list(ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, lookback=120).bars)


def staleness() -> object:
    return assess_staleness(bars, Timeframe.H1, AS_OF, PARAMS.min_bars)


def strategies() -> object:
    return score_all(bars, PARAMS)


def decision() -> object:
    verdict = assess_staleness(bars, Timeframe.H1, AS_OF, PARAMS.min_bars)
    assert not verdict.stale
    return naive_router(score_all(bars, PARAMS))


def measure(fn: object, number: int = 2000, repeat: int = 7) -> tuple[float, float]:
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeat)]  # type: ignore[arg-type]
    return statistics.median(runs), min(runs)


print(f"per-decision compute on {len(bars)} real BTCUSD 1h bars (median / best of 7 x 2000 calls)")
for name, fn in [("staleness gate", staleness), ("3 strategies", strategies), ("full decision", decision)]:
    median, best = measure(fn)
    print(f"  {name:<15} {median:8.1f} µs   (best {best:.1f} µs)")
