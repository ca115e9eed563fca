"""Backtest throughput on the whole bundled EURUSD 1h series: our full pipeline against backtesting.py.

Ours: features, regime posterior, rolled meta-controller weights and strategy scores for every bar at once,
then Decide's rule, the risk gate (``ffe.domain.risk.gate``, Decimal) and paper fills bar by bar.
backtesting.py 0.6 (AGPL-3.0, imported here only, never from ``ffe``): its canonical SmaCross example,
SMA(10)/SMA(20) crossover, on the same bars.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py draws a progress bar per run

import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ffe.adapters.models import ModelBundle, ModelUnavailableError, load_bundle
from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import BacktestConfig, BarArrays, StrategyName, run_backtest
from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.meta import rolled_weights
from ffe.domain.regime import posterior
from ffe.domain.strategies import StrategyParams, score_matrix
from tests.fakes.models import random_bundle

ASSET = "EURUSD"
REPEAT = 5


class SmaCross(Strategy):  # backtesting.py's README example, verbatim apart from the names
    n1 = 10
    n2 = 20

    def init(self) -> None:
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.sell()


def median_seconds(fn: Callable[[], object], repeat: int = REPEAT) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs), min(runs)


dataset = datasets()[ASSET]
raw = load_bars(dataset.file)
bars = BarArrays.from_bars(raw)
n = len(bars)
try:
    bundle: ModelBundle = load_bundle("bundled")
    which = f"champion {bundle.version}"
except ModelUnavailableError as exc:
    bundle = random_bundle(seed=0)
    which = f"the seeded random test bundle {bundle.version} (no trained champion yet: {exc})"

frame = pd.DataFrame(
    {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
    index=pd.DatetimeIndex(bars.times),
)
span = f"{bars.times[0].astype('datetime64[m]')} .. {bars.times[-1].astype('datetime64[m]')}"
print(f"{ASSET} {dataset.timeframe}, {n} bars ({span}), model: {which}")
print(f"median / best of {REPEAT} runs\n")

meta_only = BacktestConfig(strategies=(StrategyName.META_CONTROLLER,))
every = BacktestConfig()


def ours_meta() -> object:
    return run_backtest(bars, ASSET, dataset.timeframe, bundle, config=meta_only)


def ours_all() -> object:
    return run_backtest(bars, ASSET, dataset.timeframe, bundle, config=every)


def signals_only() -> object:
    """The vectorized part alone: features, posterior, rolled weights, strategy scores for every bar
    (on one BLAS thread, as the engine runs it)."""
    with threadpool_limits(limits=1, user_api="blas"):
        features = feature_matrix(bars.close, FeatureParams())
        rows = np.all(np.isfinite(features), axis=1)
        probs = np.full((n, bundle.meta.n_regimes), np.nan)
        probs[rows] = posterior(bundle.regimes["fx"], features[rows])
        rolled_weights(bundle.meta, features, np.clip(probs, 0.0, 1.0))
        return score_matrix(bars.high, bars.low, bars.close, StrategyParams())


def theirs() -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fractional-unit and progress chatter
        backtest = Backtest(frame, SmaCross, cash=100_000, commission=0.001, exclusive_orders=True)
        return backtest.run()


rows = []
for name, fn, strategies in [
    ("ffe: vectorized signals only", signals_only, 0),
    ("ffe: meta_controller, full pipeline", ours_meta, 1),
    ("ffe: all strategies, full pipeline", ours_all, len(ours_all().runs)),  # type: ignore[attr-defined]
    ("backtesting.py 0.6.6: SmaCross", theirs, 1),
]:
    fn()  # warm caches and imports
    median, best = median_seconds(fn)
    rows.append((name, median, best, strategies))
    per_strategy = f"   ({n * strategies / median:9,.0f} strategy-bars/s)" if strategies > 1 else ""
    print(f"  {name:<38} {median * 1e3:8.1f} ms  (best {best * 1e3:7.1f})  {n / median:9,.0f} bars/s{per_strategy}")

ours = next(r for r in rows if r[0].startswith("ffe: meta_controller"))
smacross = rows[-1]
print(f"\nbars/s ratio, ours (meta_controller, full pipeline) / backtesting.py SmaCross: {smacross[1] / ours[1]:.2f}")
stats = theirs()
print(f"(SmaCross on these bars: {stats['# Trades']} trades, return {stats['Return [%]']:.2f} %)")
