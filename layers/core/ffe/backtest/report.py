"""What a backtest leaves behind: ``report.json``, three PNG plots, and a table for the terminal."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ffe.backtest.engine import BacktestResult, StrategyName
from ffe.domain.meta import OPTIONS
from ffe.domain.performance import drawdown_curve

REPORT_JSON = "report.json"
EQUITY_PNG = "equity.png"
DRAWDOWN_PNG = "drawdown.png"
WEIGHTS_PNG = "weights.png"

_COLUMNS = (
    ("strategy", "{}"),
    ("return", "{:+.2%}"),
    ("sharpe", "{:+.2f}"),
    ("sortino", "{:+.2f}"),
    ("max dd", "{:.2%}"),
    ("turnover", "{:.4f}"),
    ("churn", "{:.3f}"),
    ("max disr.", "{:.3f}"),
    ("trades", "{}"),
    ("blocked", "{}"),
)


def report_dict(result: BacktestResult) -> dict[str, Any]:
    """Everything ``report.json`` holds: the run's identity, its inputs, and every strategy's figures."""
    regimes = Counter(label for label in result.regimes if label is not None)
    return {
        "asset": result.asset,
        "timeframe": str(result.timeframe),
        "asset_class": str(result.asset_class),
        "window": {
            "start": _iso(result.times[0]),
            "end": _iso(result.times[-1]),
            "bars": result.bars,
        },
        "data": {
            "first": result.data_first.isoformat(),
            "last": result.data_last.isoformat(),
            "bars_read": result.first_index + result.bars,
            "sha256": result.data_sha256,
        },
        "bundle": {"version": result.bundle_version, "note": result.bundle_note},
        "config": _jsonable(dataclasses.asdict(result.config)),
        "risk_limits": _jsonable(dataclasses.asdict(result.limits)),
        "periods_per_year": result.periods_per_year,
        "speed": {
            "elapsed_s": round(result.elapsed_s, 4),
            "bars_per_second": round(result.bars_per_second, 1),
            "strategy_bars_per_second": round(result.bars_per_second * len(result.runs), 1),
        },
        "regime_share": {label: round(n / result.bars, 4) for label, n in regimes.most_common()},
        "regime_switch_choice": result.regime_switch_choice,
        "skipped": result.skipped,
        "strategies": {
            name: {"metrics": _jsonable(run.metrics.as_dict()), "block_reasons": run.block_reasons}
            for name, run in result.runs.items()
        },
    }


def write_report(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write ``report.json`` and the PNGs (equity, drawdowns, the meta-controller's weights) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / REPORT_JSON}
    paths["json"].write_text(json.dumps(report_dict(result), indent=2, allow_nan=False) + "\n")
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    paths["equity"] = _plot_equity(result, out_dir / EQUITY_PNG)
    paths["drawdown"] = _plot_drawdowns(result, out_dir / DRAWDOWN_PNG)
    if str(StrategyName.META_CONTROLLER) in result.runs:
        paths["weights"] = _plot_weights(result, out_dir / WEIGHTS_PNG)
    return paths


def format_table(result: BacktestResult) -> str:
    """The per-strategy metrics as a table fitted to the terminal, with a heading line and the speed."""
    from ffe.terminal import Column, render, table

    rows = []
    for name, run in result.runs.items():
        m = run.metrics
        values = (
            name,
            m.total_return,
            m.sharpe,
            m.sortino,
            m.max_drawdown,
            m.turnover,
            m.churn_rate,
            m.max_disruption,
            m.trades,
            m.blocked,
        )
        rows.append([fmt.format(v) for (_, fmt), v in zip(_COLUMNS, values, strict=True)])
    columns = [Column(header, "left" if i == 0 else "right") for i, (header, _) in enumerate(_COLUMNS)]
    model = result.bundle_version or "none: the naive-router fallback decides the meta_controller row"
    head = (
        f"{result.asset} {result.timeframe}  {_iso(result.times[0])} .. {_iso(result.times[-1])}  "
        f"{result.bars} bars  model {model}"
    )
    tail = [f"{name}: skipped ({why})" for name, why in result.skipped.items()]
    if result.bundle_note:
        tail.append(f"meta-controller unavailable: {result.bundle_note}")
    tail.append(f"{result.bars_per_second:,.0f} bars/s over {len(result.runs)} strategies ({result.elapsed_s:.2f} s)")
    return render(head, table(columns, rows), *tail)


# --- plots --------------------------------------------------------------------------------------------


def _plot_equity(result: BacktestResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    cash = float(result.config.starting_cash)
    for name, run in result.runs.items():
        ax.plot(result.times, run.equity / cash, label=name, linewidth=1.4 if name == "meta_controller" else 0.9)
    ax.set_title(f"{result.asset} {result.timeframe}: equity (starting cash = 1)")
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def _plot_drawdowns(result: BacktestResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4))
    cash = float(result.config.starting_cash)
    for name, run in result.runs.items():
        dd = drawdown_curve(np.concatenate([[cash], run.equity]))[1:]
        ax.plot(result.times, dd * 100, label=name, linewidth=0.9)
    ax.set_title(f"{result.asset} {result.timeframe}: drawdown from the running peak")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return _save(fig, path)


def _plot_weights(result: BacktestResult, path: Path) -> Path:
    """The meta-controller's weights as a stacked area over a strip coloured by the dominant regime."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    run = result.runs[str(StrategyName.META_CONTROLLER)]
    fig, (ax, strip) = plt.subplots(
        2, 1, figsize=(11, 5.2), sharex=True, gridspec_kw={"height_ratios": [6, 1], "hspace": 0.05}
    )
    stacks = ax.stackplot(result.times, np.nan_to_num(run.weights).T, labels=[str(o) for o in OPTIONS], alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_ylabel("weight")
    ax.set_title(f"{result.asset} {result.timeframe}: meta-controller weights, and the dominant regime below")
    ax.legend(handles=list(stacks), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    labels = sorted({r for r in result.regimes if r is not None})
    cmap = plt.get_cmap("Set2" if len(labels) <= 8 else "tab20b")
    for label, spans in _regime_spans(result).items():
        strip.broken_barh(spans, (0, 1), facecolors=cmap(labels.index(label)), linewidth=0)
    strip.set_yticks([])
    strip.set_ylabel("regime", rotation=0, ha="right", va="center")
    handles = [Patch(color=cmap(i), label=label) for i, label in enumerate(labels)]
    if handles:
        strip.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.6), fontsize="x-small")
    strip.set_xlim(result.times[0], result.times[-1])
    return _save(fig, path, tight=False)


def _regime_spans(result: BacktestResult) -> dict[str, list[tuple[float, float]]]:
    """(start, width) in matplotlib date units of each run of bars under one dominant regime."""
    import matplotlib.dates as mdates

    x = mdates.date2num(result.times)
    step = float(np.median(np.diff(x))) if x.size > 1 else 1.0
    edges = np.append(x, x[-1] + step)  # a run lasts until the next bar opens (weekend gaps included)
    spans: dict[str, list[tuple[float, float]]] = {}
    regimes = result.regimes
    first = 0
    for i in range(1, len(regimes) + 1):
        if i == len(regimes) or regimes[i] != regimes[first]:
            label = regimes[first]
            if label is not None:
                spans.setdefault(label, []).append((float(edges[first]), float(edges[i] - edges[first])))
            first = i
    return spans


def _save(fig: Any, path: Path, tight: bool = True) -> Path:
    import matplotlib.pyplot as plt

    fig.autofmt_xdate()
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


# --- JSON ---------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _iso(value: np.datetime64) -> str:
    return f"{value.astype('datetime64[s]')}Z"
