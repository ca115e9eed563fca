"""The walk-forward report's two figures, as PNG files beside ``evaluation.json`` (CLI only: matplotlib).

``fold_sharpe.png``: per series, each fold's annualised Sharpe of the seed-averaged test path with its
block-bootstrap interval (``RowSummary.sharpe_by_fold``), for the meta-controller and its bars.
``equity.png``: per series, the meta-controller's equity over the concatenated test windows as a band across
seeds (lowest to highest seed, the seed-averaged path as a line), beside the naive router and buy and hold;
dotted lines mark where a fold's test window starts (its bundle was retrained there).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ffe.evaluation.walk_forward import HOLD, META, NAIVE

if TYPE_CHECKING:
    from ffe.evaluation.walk_forward import EvaluationReport

FOLD_SHARPE_PNG = "fold_sharpe.png"
EQUITY_PNG = "equity.png"
ROWS = (META, NAIVE, "regime_switch", HOLD)  # the rows drawn: the model and what it must beat
COLOURS = {META: "tab:blue", NAIVE: "tab:orange", "regime_switch": "tab:green", HOLD: "tab:gray"}


def write_plots(report: EvaluationReport, out: Path) -> list[Path]:
    """Both figures into ``out``; returns their paths (none when the report has no series)."""
    if not report.series:
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    paths = [out / FOLD_SHARPE_PNG, out / EQUITY_PNG]
    n = len(report.series)
    level = float(report.config.get("level", 0.95))

    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), squeeze=False)
    for ax, s in zip(axes[:, 0], report.series, strict=True):
        ax.axhline(0.0, color="black", linewidth=0.6)
        rows = [r for r in ROWS if r in s.rows]
        width = 0.8 / max(len(rows), 1)
        for j, row in enumerate(rows):
            intervals = s.rows[row].sharpe_by_fold
            x = np.arange(len(intervals)) + (j - (len(rows) - 1) / 2) * width
            est = np.array([i.estimate for i in intervals])
            err = np.array([[i.estimate - i.low for i in intervals], [i.high - i.estimate for i in intervals]])
            ax.errorbar(x, est, yerr=np.clip(err, 0, None), fmt="o", capsize=3, color=COLOURS[row], label=row)
        ax.set_xticks(range(len(s.folds)), [f"fold {k + 1}" for k in range(len(s.folds))])
        title = f"{s.symbol} {s.timeframe}: each fold's test window, {level:.0%} block-bootstrap interval"
        _label(ax, "Sharpe (annualised)", title)
    _save(plt, fig, paths[0])

    fig, axes = plt.subplots(n, 1, figsize=(9, 2.8 * n), squeeze=False)
    for ax, s in zip(axes[:, 0], report.series, strict=True):
        if s.meta_paths:
            curves = np.stack([np.cumprod(1.0 + p) for p in s.meta_paths.values()])
            x = np.arange(curves.shape[1])
            ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=COLOURS[META], alpha=0.25)
        for row in (META, NAIVE, HOLD):
            if row in s.paths:
                label = f"{row} (seed mean; band: {len(s.meta_paths)} seeds)" if row == META else row
                ax.plot(np.cumprod(1.0 + s.paths[row]), color=COLOURS[row], linewidth=1.0, label=label)
        starts = np.cumsum([0] + [f.test_hi - f.test_lo for f in s.folds[:-1]])
        for start in starts[1:]:
            ax.axvline(start, color="black", linestyle=":", linewidth=0.6)
        ax.set_xlabel("test bar (folds' windows in time order)")
        _label(ax, "equity (start 1.0)", f"{s.symbol} {s.timeframe}: out-of-sample equity")
    _save(plt, fig, paths[1])
    return paths


def _label(ax: Any, ylabel: str, title: str) -> None:
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["EQUITY_PNG", "FOLD_SHARPE_PNG", "write_plots"]
