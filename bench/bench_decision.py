"""Per-decision compute: staleness gate, three strategies, regime posterior, meta-controller weights and the
blend (the shipped champion), in microseconds.

Prints figures; asserts nothing. Uses the bundled real BTCUSD hourly series (120-bar look-back).
"""

from __future__ import annotations

import statistics
import timeit
from datetime import UTC, datetime

import numpy as np

from ffe.adapters.models import load_bundle
from ffe.adapters.replay import ReplayProvider
from ffe.domain.ensemble import naive_router, weighted_blend
from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.meta import OPTIONS, latest_weights
from ffe.domain.models import AssetClass, Timeframe
from ffe.domain.regime import posterior
from ffe.domain.staleness import assess_staleness
from ffe.domain.strategies import StrategyParams, score_all

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
PARAMS = StrategyParams()
bars = list(ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, lookback=120).bars)
BUNDLE = load_bundle("bundled")
REGIME = BUNDLE.regimes["crypto"]
closes = np.array([b.close for b in bars])


def regime() -> tuple[np.ndarray, np.ndarray]:
    rows = feature_matrix(closes, FeatureParams())[-BUNDLE.meta.roll_bars :]
    return rows, posterior(REGIME, rows)


def meta_weights() -> object:
    return latest_weights(BUNDLE.meta, *regime())


def staleness() -> object:
    return assess_staleness(bars, Timeframe.H1, AS_OF, PARAMS.min_bars, asset_class=AssetClass.CRYPTO)


def strategies() -> object:
    return score_all(bars, PARAMS)


def naive_decision() -> object:
    verdict = assess_staleness(bars, Timeframe.H1, AS_OF, PARAMS.min_bars, asset_class=AssetClass.CRYPTO)
    assert not verdict.stale
    return naive_router(score_all(bars, PARAMS))


def meta_decision() -> object:
    verdict = assess_staleness(bars, Timeframe.H1, AS_OF, PARAMS.min_bars, asset_class=AssetClass.CRYPTO)
    assert not verdict.stale
    w = latest_weights(BUNDLE.meta, *regime())
    return weighted_blend(score_all(bars, PARAMS), dict(zip([str(o) for o in OPTIONS], w.tolist(), strict=True)))


def measure(fn: object, number: int = 2000, repeat: int = 7) -> tuple[float, float]:
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeat)]  # type: ignore[arg-type]
    return statistics.median(runs), min(runs)


print(f"per-decision compute on {len(bars)} real BTCUSD 1h bars (median / best of 7 x 2000 calls)")
cases = [
    ("staleness gate", staleness),
    ("3 strategies", strategies),
    ("regime posterior", regime),
    ("meta weights", meta_weights),
    ("naive decision", naive_decision),
    ("meta decision", meta_decision),
]
for name, fn in cases:
    median, best = measure(fn)
    print(f"  {name:<16} {median:8.1f} µs   (best {best:.1f} µs)")
