"""The golden backtests: ``ffe.backtest.engine.run_backtest`` over each bundled real series, whole, with the
meta-controller and the naive router, as records.

Per strategy: the summary metrics and the risk gate's block reasons exactly, and every per-bar column (the
decision, its confidence and blended score, the weights, the approved order, the position, the equity and its
return, the exposure) in chunks of ``CHUNK`` bars: actions and models as one character per bar, numbers as a
digest of their exact float64 bytes. A mismatch so names the series, strategy, column and the bars it is in.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ffe.adapters.models import load_bundle
from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import BacktestConfig, BacktestResult, StrategyName, StrategyRun, run_backtest

CHUNK = 250
STRATEGIES = (StrategyName.META_CONTROLLER, StrategyName.NAIVE_ROUTER)
SERIES = ("BTCUSD", "ETHUSD", "EURUSD", "SPX")  # the four series bundled when the golden files were made
NUMBERS = ("equity", "returns", "positions", "exposure", "weights", "scores", "confidence", "orders")
ACTION_CODES = {"BUY": "B", "SELL": "S", "HOLD": "H"}

Record = dict[str, Any]


def backtest(asset: str) -> BacktestResult:
    """The whole bundled series of ``asset`` with the bundled champion, the meta-controller and the naive router."""
    dataset = datasets()[asset]
    config = BacktestConfig(strategies=STRATEGIES)
    return run_backtest(load_bars(dataset.file), asset, dataset.timeframe, load_bundle("bundled"), config=config)


def _chunks(times: NDArray[np.datetime64]) -> list[tuple[str, slice]]:
    out = []
    for lo in range(0, times.size, CHUNK):
        hi = min(lo + CHUNK, times.size)
        out.append((f"bars {lo:05d}-{hi - 1:05d} from {str(times[lo])[:16]}", slice(lo, hi)))  # sorts in order
    return out


def _number_digest(values: NDArray[Any]) -> str:
    exact = np.ascontiguousarray(values, dtype=np.float64)
    exact = np.where(np.isnan(exact), np.nan, exact)  # one NaN: how a NaN was made is not a value
    return hashlib.sha256(exact.tobytes()).hexdigest()[:16]


def _run(run: StrategyRun, chunks: list[tuple[str, slice]]) -> dict[str, Any]:
    legend = sorted({str(m) for m in run.models})
    letters = {name: chr(ord("a") + i) for i, name in enumerate(legend)}
    actions = "".join(ACTION_CODES[str(a)] for a in run.actions)
    models = "".join(letters[str(m)] for m in run.models)
    per_bar: dict[str, Any] = {
        "actions": {label: actions[part] for label, part in chunks},
        "models": {label: models[part] for label, part in chunks},
    }
    for name in NUMBERS:
        column = getattr(run, name)
        per_bar[name] = {label: _number_digest(column[part]) for label, part in chunks}
    return {
        "metrics": run.metrics.as_dict(),
        "block_reasons": dict(sorted(run.block_reasons.items())),
        "models_legend": {letters[name]: name for name in legend},
        "per_bar": per_bar,  # last in key order, so a failure message names the summary's differences first
    }


def backtest_records(asset: str) -> list[Record]:
    """The records of ``asset``'s golden backtest: the series' own, then one per strategy."""
    result = backtest(asset)
    chunks = _chunks(result.times)
    regimes = [r if r is not None else "-" for r in result.regimes]
    labels = sorted(set(regimes))
    series = {
        "timeframe": str(result.timeframe),
        "asset_class": str(result.asset_class),
        "first_index": result.first_index,
        "bars": result.bars,
        "data_sha256": result.data_sha256,
        "data_first": result.data_first.isoformat(),
        "data_last": result.data_last.isoformat(),
        "bundle_version": result.bundle_version,
        "bundle_note": result.bundle_note,
        "skipped": result.skipped,
        "regime_switch_choice": result.regime_switch_choice,
        "limits": dataclasses.asdict(result.limits),
        "periods_per_year": result.periods_per_year,
        "regimes_legend": {chr(ord("a") + i): label for i, label in enumerate(labels)},
        "per_bar": {
            "regimes": {
                label: "".join(chr(ord("a") + labels.index(r)) for r in regimes[part]) for label, part in chunks
            },
            "signals": {label: _number_digest(result.signals[part]) for label, part in chunks},
            "closes": {label: _number_digest(result.closes[part]) for label, part in chunks},
        },
    }
    records = [{"key": f"backtest {asset}", "data": series}]
    records += [{"key": f"backtest {asset} {name}", "data": _run(run, chunks)} for name, run in result.runs.items()]
    return records
