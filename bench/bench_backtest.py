"""Backtest throughput on the whole bundled EURUSD 1h series: our full pipeline beside backtesting.py and vectorbt.

Ours: features, regime posterior, rolled meta-controller weights and strategy scores for every bar at once,
then Decide's rule, the risk gate (``ffe.domain.risk``, Decimal, its window statistics computed once per series)
and paper fills bar by bar; once with the meta-controller, once with the naive router (the runtime fallback).
The references, on the same bars, in the same run:
- backtesting.py 0.6 (AGPL-3.0): its canonical SmaCross example, SMA(10)/SMA(20) crossover, ``Backtest.run``;
- vectorbt (Apache-2.0 with the Commons Clause): the same crossover through ``Portfolio.from_signals``, with the
  figures we report (total return, Sharpe, max drawdown, trades); its numba compilation is warmed up first.
Both are imported here only, never from ``ffe`` (dev extra); each row says "not installed" when its library is
absent. Every figure is a median of REPEAT runs taken round-robin (a load spike hits every row alike), and each
ratio divides two figures of this run (BENCH_REPEAT sets REPEAT).

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
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
TARGET = 2.0  # issue 16: ffe's backtest >= 2x backtesting.py's bars/s

dataset = datasets()[ASSET]
bars = BarArrays.from_bars(load_bars(dataset.file))
n = len(bars)
try:
    bundle: ModelBundle = load_bundle("bundled")
    which = f"champion {bundle.version}"
except ModelUnavailableError as exc:
    bundle = random_bundle(seed=0)
    which = f"the seeded random test bundle {bundle.version} (no trained champion yet: {exc})"


def ours(strategies: tuple[StrategyName, ...]) -> Callable[[], object]:
    config = BacktestConfig(strategies=strategies)
    return lambda: run_backtest(bars, ASSET, dataset.timeframe, bundle, config=config)


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


def backtesting_py() -> tuple[str, Callable[[], object] | None, str]:
    try:
        import backtesting
        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
        from backtesting.test import SMA
    except ImportError:
        return "backtesting.py: SmaCross", None, "not installed (pip install -e '.[dev]')"

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

    frame = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.DatetimeIndex(bars.times),
    )

    def run() -> pd.Series:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fractional-unit and progress chatter
            backtest = Backtest(frame, SmaCross, cash=100_000, commission=0.001, exclusive_orders=True)
            return backtest.run()

    stats = run()
    note = f"{stats['# Trades']} trades, return {stats['Return [%]']:.2f} %"
    return f"backtesting.py {backtesting.__version__}: SmaCross", run, note


def vectorbt() -> tuple[str, Callable[[], object] | None, str]:
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        return "vectorbt: SMA(10/20) from_signals", None, "not installed (pip install -e '.[dev]')"
    close = pd.Series(bars.close, index=pd.DatetimeIndex(bars.times))

    def run() -> tuple[float, float, float, int]:
        fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 20)
        entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
        pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=100_000, fees=0.001, freq="1h")
        return pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown(), int(pf.trades.count())

    began = time.perf_counter()
    total, _, _, trades = run()  # numba compiles on the first call
    note = f"{trades} trades, return {total * 100:.2f} %; first call (numba JIT) {time.perf_counter() - began:.1f} s"
    return f"vectorbt {vbt.__version__}: SMA(10/20) from_signals", run, note


span = f"{bars.times[0].astype('datetime64[m]')} .. {bars.times[-1].astype('datetime64[m]')}"
print(f"{ASSET} {dataset.timeframe}, {n} bars ({span}), model: {which}")
print(f"median / best of {REPEAT} runs, taken round-robin\n")

rows: list[tuple[str, Callable[[], object] | None, int, str]] = [
    ("ffe: vectorized signals only", signals_only, 0, ""),
    ("ffe: meta_controller, full pipeline", ours((StrategyName.META_CONTROLLER,)), 1, ""),
    ("ffe: naive_router, full pipeline", ours((StrategyName.NAIVE_ROUTER,)), 1, ""),
    ("ffe: all strategies, full pipeline", ours(tuple(StrategyName)), len(StrategyName), ""),
]
for name, fn, note in (backtesting_py(), vectorbt()):
    rows.append((name, fn, 1, note))

runnable = {name: fn for name, fn, _, _ in rows if fn is not None}
for fn in runnable.values():
    fn()  # warm caches and imports
times: dict[str, list[float]] = {name: [] for name in runnable}
for _ in range(REPEAT):
    for name, fn in runnable.items():
        began = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - began)

median = {name: statistics.median(runs) for name, runs in times.items()}
for name, fn, strategies, note in rows:
    if fn is None:
        print(f"  {name:<44} {note}")
        continue
    per_strategy = f"  ({n * strategies / median[name]:9,.0f} strategy-bars/s)" if strategies > 1 else ""
    print(
        f"  {name:<44} {median[name] * 1e3:8.1f} ms  (best {min(times[name]) * 1e3:7.1f})"
        f"  {n / median[name]:9,.0f} bars/s{per_strategy}"
    )
    if note:
        print(f"  {'':<44} {note}")

print()
references = [(name, median[name]) for name, fn, _, _ in rows[4:] if fn is not None]
for ours_name in ("ffe: meta_controller, full pipeline", "ffe: naive_router, full pipeline"):
    for ref_name, ref in references:
        print(f"bars/s ratio, {ours_name.removeprefix('ffe: ')} / {ref_name}: {ref / median[ours_name]:.2f}")
if not references:
    print("no reference installed: no ratio")
else:
    print(f"(target, issue 16: ffe >= {TARGET:.0f}x backtesting.py)")
