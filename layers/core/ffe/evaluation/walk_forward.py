"""Walk-forward evaluation: retrain per fold, backtest every strategy row on the fold's unseen bars, aggregate.

CLI only (``ffe evaluate``), never imported by a Lambda: it trains (torch, scikit-learn) and backtests.

Folds (``folds``). Expanding windows over one series of ``n`` bars: the last ``n - min_train`` bars are cut
into ``n_folds`` contiguous, non-overlapping test windows (equal, the last one taking the remainder;
``ffe.training.data.walk_forward``); fold ``i`` trains on every bar before its test window, ``[0, test_lo)``.

Per fold and seed (``evaluate``), as production trains: ONE bundle on every evaluated series at once (``ffe train``
trains one joint bundle on every bundled series). Fold ``k`` cuts each series at the latest at its own ``k``-th
test window (``TrainPlan.train_end``: symbol -> the open time of that window's first bar, or earlier: see below),
so the training pipeline (regime
mixtures, meta-controller, EWC update, its own inner holdout) never reads a test bar of any series; then
``run_backtest`` replays each series' test window with that bundle: every strategy row on the same bars, costs,
risk gate and fills (bars before the window are look-back only, as in production). The bundled series cover
different years, so fold ``k``'s test windows are at the same position in each series, not at one calendar time;
each series' training then stops before the earliest test window that starts inside its history
(``calendar_cuts``), so the bundle has read no bar, of any series, as late as a test window it is judged on. Only
series whose histories do not overlap in time (crypto 2019 beside SPX to 2018) keep bars later than another's.

Aggregation, per series and row. ``metrics``: the mean over folds and seeds of what ``BacktestResult`` computes.
``path``: the row's out-of-sample return path, the folds' per-bar returns concatenated in time, averaged over
seeds bar by bar (the rows that do not depend on the bundle are the same under every seed, so seeds add no fake
observations); its Sharpe, Sortino, total return and max drawdown come with a block-bootstrap interval
(``ffe.evaluation.stats.block_bootstrap_ci``). For the meta-controller: P(its Sharpe > the naive router's) and
P(> buy and hold) on the paired paths (``prob_outperforms``), and its deflated Sharpe ratio over the
seeds x folds configurations tried (``deflated_sharpe``). The JSON schema is ``EvaluationReport.as_dict``.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ffe.adapters.models import load_bundle
from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import BacktestConfig, BacktestResult, BarArrays, StrategyName, run_backtest
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import AssetClass, Timeframe
from ffe.evaluation import stats
from ffe.evaluation.files import SCHEMA
from ffe.training.data import walk_forward
from ffe.training.meta_config import MetaTrainConfig

if TYPE_CHECKING:  # the pipeline (MLflow, Postgres) is imported when a fold trains, not with the folds
    from ffe.training.pipeline import TrainPlan

META, NAIVE, HOLD = StrategyName.META_CONTROLLER.value, StrategyName.NAIVE_ROUTER.value, StrategyName.BUY_AND_HOLD.value
MEAN_METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "turnover", "churn_rate", "max_disruption")

PlanFactory = Callable[[tuple[str, ...], int, dict[str, datetime]], "TrainPlan"]


@dataclass(frozen=True, slots=True)
class Fold:
    """Bars ``[train_lo, train_hi)`` train the bundle, bars ``[test_lo, test_hi)`` test it (``train_hi <= test_lo``:
    ``folds`` makes them adjacent, ``calendar_cuts`` may stop a series' training earlier)."""

    train_lo: int
    train_hi: int
    test_lo: int
    test_hi: int


def folds(n_bars: int, n_folds: int, min_train: int) -> list[Fold]:
    """Expanding-window folds: ``n_folds`` contiguous test windows covering the bars after ``min_train``.

    Raises:
        ValueError: ``n_folds < 1``, ``min_train < 1``, or too few bars for one test bar per fold.
    """
    return [
        Fold(train.start, train.stop, test.start, test.stop) for train, test in walk_forward(n_bars, n_folds, min_train)
    ]


def quick_plan(symbols: tuple[str, ...], seed: int, train_end: dict[str, datetime]) -> TrainPlan:
    """The few-second training config (``MetaTrainConfig.quick``): smoke runs and tests, not a traded model."""
    from ffe.training.pipeline import TrainPlan

    return TrainPlan(
        seed=seed,
        symbols=symbols,
        meta=MetaTrainConfig.quick(seed=seed),
        ewc_epochs=2,
        progress=False,
        train_end=train_end,
    )


def full_plan(symbols: tuple[str, ...], seed: int, train_end: dict[str, datetime]) -> TrainPlan:
    """``ffe train``'s default config, as production trains it."""
    from ffe.training.pipeline import TrainPlan, recipe

    return TrainPlan(seed=seed, symbols=symbols, meta=recipe(seed), progress=False, train_end=train_end)


@dataclass(frozen=True)
class FoldRun:
    """One fold under one seed: the bundle it trained and every row's figures on the test window."""

    fold: int
    seed: int
    train_bars: int  # bars before the test window (the training pipeline's input, its inner holdout included)
    test_start: str  # ISO open time of the first and last test bar
    test_end: str
    test_bars: int
    bundle_version: str | None
    metrics: dict[str, dict[str, float]]  # row -> Metrics.as_dict()
    returns: dict[str, NDArray[np.float64]]  # row -> per-bar returns over the test window


@dataclass(frozen=True)
class RowSummary:
    metrics: dict[str, float]  # mean over folds and seeds
    intervals: dict[str, stats.Interval]  # on the seed-averaged, fold-concatenated path
    sharpe_by_seed: dict[int, float]  # of each seed's own fold-concatenated path
    sharpe_by_fold: list[stats.Interval]  # of each fold's seed-averaged test path, with its interval


@dataclass(frozen=True)
class SeriesReport:
    symbol: str
    timeframe: str
    periods_per_year: float
    bars: int
    folds: list[Fold]
    runs: list[FoldRun]
    rows: dict[str, RowSummary]
    skipped: dict[str, str]  # row -> why it did not run in some fold
    p_meta_beats_naive: float | None
    p_meta_beats_buy_and_hold: float | None
    meta_deflated_sharpe: float | None
    paths: dict[str, NDArray[np.float64]]  # row -> the seed-averaged out-of-sample path (paths.npz)
    meta_paths: dict[int, NDArray[np.float64]]  # seed -> the meta-controller's own path (equity bands)
    bars_sha256: str = ""  # BarArrays.digest of the whole series: the promotion gate pairs only the same prices


@dataclass
class EvaluationReport:
    seeds: tuple[int, ...]
    n_folds: int
    config: dict[str, Any]
    series: list[SeriesReport] = field(default_factory=list)
    bundle_versions: list[str] = field(default_factory=list)  # fold by fold, seed by seed
    training_config: dict[str, Any] = field(default_factory=dict)  # what each fold trained with, less seed and cuts
    registered_version: str | None = None  # the registered version whose recorded config this evaluates

    def as_dict(self) -> dict[str, Any]:
        """The JSON document (schema ``ffe.evaluation/2``; docs/evaluation.md, "Walk-forward evaluation")."""
        return {
            "schema": SCHEMA,
            "seeds": list(self.seeds),
            "n_folds": self.n_folds,
            "config": self.config,
            "model": {
                "registered_version": self.registered_version,
                "bundle_versions": list(self.bundle_versions),
                "training_config": self.training_config,
            },
            "series": {s.symbol: _series_dict(s) for s in self.series},
        }

    def arrays(self) -> dict[str, NDArray[np.float64]]:
        """``paths.npz``: "SYMBOL/ROW" -> the row's seed-averaged out-of-sample returns, "SYMBOL/meta_controller/
        seed<S>" -> each seed's own; every evaluation on the same series, folds and test bars has them on the same
        bars."""
        out: dict[str, NDArray[np.float64]] = {}
        for s in self.series:
            out.update({f"{s.symbol}/{row}": path for row, path in s.paths.items()})
            out.update({f"{s.symbol}/{META}/seed{seed}": path for seed, path in s.meta_paths.items()})
        return out


def evaluate(
    series_symbols: Sequence[str],
    n_folds: int,
    seeds: Sequence[int],
    plan_factory: PlanFactory = quick_plan,
    *,
    test_bars: int | None = None,
    min_train_fraction: float = 0.5,
    config: BacktestConfig | None = None,
    block: int | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    work_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    files: Mapping[str, Path] | None = None,
    jobs: int = 1,
) -> EvaluationReport:
    """Walk-forward evaluation of every strategy row on each series (see the module docstring).

    ``test_bars``: how many final bars of each series the test windows cover (None: all bars after
    ``min_train_fraction``). ``files``: symbol -> a user's own bars (scenario format) standing in for the bundled
    series of that symbol, in training (``TrainPlan.data_files``) and in the backtest. ``jobs``: how many folds x
    seeds train at once, each in a process of its own (the report is the same for any number).

    Raises:
        KeyError: a symbol with neither a bundled series nor a file.
        InvalidInputError: before any training: no series, no seeds or a seed twice (its path would count twice),
            a series too short for the folds or ``test_bars``, a file the scenario loader or the series checks
            refuse; during it, :class:`FoldFailedError`.
    """
    from ffe.training.data import read_bars_file

    if not seeds or len(set(seeds)) != len(seeds):
        raise InvalidInputError(f"need one or more distinct seeds, got {list(seeds)}")
    if not series_symbols:
        raise InvalidInputError("no series to evaluate")
    cfg = config or BacktestConfig()
    known = datasets()
    own = {s: read_bars_file(path, s) for s, path in (files or {}).items()}
    symbols = tuple(dict.fromkeys(series_symbols))
    unknown = [s for s in symbols if s not in known and s not in own]
    if unknown:
        raise KeyError(f"no bundled series for {', '.join(unknown)}; bundled: {', '.join(sorted(known))}")
    data = {s: BarArrays.from_bars(own[s].bars if s in own else load_bars(known[s].file)) for s in symbols}
    timeframes = {s: own[s].timeframe if s in own else known[s].timeframe for s in symbols}
    classes = {s: own[s].asset_class if s in own else None for s in symbols}  # None: the built-in table's
    data_files = {s: str(own[s].path) for s in symbols if s in own} or None
    cuts = {symbol: _cuts(symbol, len(bars), n_folds, test_bars, min_train_fraction) for symbol, bars in data.items()}
    report = EvaluationReport(
        seeds=tuple(seeds),
        n_folds=n_folds,
        config={
            "test_bars": test_bars,
            "min_train_fraction": min_train_fraction,
            "block": block,
            "n_boot": n_boot,
            "level": level,
            "strategies": [str(s) for s in cfg.strategies],
            "trained_on": list(symbols),
            "own_data": {s: {"file": str(own[s].path), "sha256": own[s].sha256} for s in symbols if s in own},
        },
    )
    runs: dict[str, list[FoldRun]] = {s: [] for s in symbols}
    skipped: dict[str, dict[str, str]] = {s: {} for s in symbols}
    ppy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = work_dir or Path(tmp)
        jobs_to_run: list[_Job] = []
        trained: dict[str, list[Fold]] = {s: [] for s in symbols}
        for k in range(n_folds):
            starts = {s: _time(data[s].times[cuts[s][k].test_lo]) for s in symbols}
            ends = {
                s: _time(data[s].times[cuts[s][k].test_hi]) if cuts[s][k].test_hi < len(data[s]) else None
                for s in symbols
            }
            train_end = calendar_cuts(starts, {s: _time(data[s].times[0]) for s in symbols})
            for s in symbols:  # the bars each series' training reads: up to its calendar cut
                trained[s].append(replace(cuts[s][k], train_hi=_bars_before(data[s], train_end[s])))
            for seed in seeds:
                plan = replace(plan_factory(symbols, seed, train_end), data_files=data_files)
                if not report.training_config:
                    report.training_config = evaluated_config(plan)
                windows = {s: (trained[s][k], starts[s], ends[s], timeframes[s], classes[s]) for s in symbols}
                jobs_to_run.append(_Job(k, seed, plan, root / f"f{k}-s{seed}", windows, cfg))
        for job, (version, results) in zip(jobs_to_run, _run_jobs(jobs_to_run, data, jobs, n_folds, log), strict=True):
            report.bundle_versions.append(version)
            for symbol, result in results.items():
                ppy[symbol] = result.periods_per_year
                skipped[symbol].update(result.skipped)
                runs[symbol].append(_fold_run(job.fold, job.seed, job.windows[symbol][0], result))
    for symbol in symbols:
        summary = replace(
            _summarise(
                symbol,
                str(timeframes[symbol]),
                ppy[symbol],
                len(data[symbol]),
                trained[symbol],
                runs[symbol],
                skipped[symbol],
                block,
                n_boot,
                level,
            ),
            bars_sha256=data[symbol].digest(),
        )
        report.series.append(summary)
    return report


def _bars_before(bars: BarArrays, when: datetime) -> int:
    return int(np.searchsorted(bars.times, np.datetime64(when.astimezone(UTC).replace(tzinfo=None), "us"), "left"))


def calendar_cuts(starts: Mapping[str, datetime], firsts: Mapping[str, datetime]) -> dict[str, datetime]:
    """Where a fold's joint bundle stops reading each series: before its own test window, and before any other
    series' test window that starts inside its history.

    ``starts``: symbol -> the open time of the fold's first test bar; ``firsts``: symbol -> its first bar. One bundle
    is tested on every series, so it must not have read, on any series, a bar as late as a test window it is judged
    on (production, at the start of that window, had no later bar of anything). A test window that starts before a
    series' first bar cannot bound it (its whole history is later): such pairs, of series from different years,
    are left as they are (docs/evaluation.md).
    """
    return {
        s: min([start, *(other for u, other in starts.items() if u != s and firsts[s] < other < start)])
        for s, start in starts.items()
    }


def _cuts(symbol: str, n: int, n_folds: int, test_bars: int | None, min_train_fraction: float) -> list[Fold]:
    if test_bars is not None and test_bars >= n:
        raise InvalidInputError(f"{symbol}: {test_bars} test bars leave none of its {n} bars to train on")
    min_train = n - test_bars if test_bars is not None else round(n * min_train_fraction)
    try:
        return folds(n, n_folds, min_train)
    except ValueError as exc:
        raise InvalidInputError(f"{symbol}: {exc}") from None


@dataclass(frozen=True)
class _Job:
    """One fold under one seed: the plan of its bundle, and per series the test window it is backtested on."""

    fold: int
    seed: int
    plan: TrainPlan
    out_dir: Path
    windows: dict[str, tuple[Fold, datetime, datetime | None, Timeframe, AssetClass | None]]  # and asset class
    config: BacktestConfig


def _run_job(job: _Job, data: Mapping[str, BarArrays]) -> tuple[str, dict[str, BacktestResult]]:
    """Train the job's bundle, backtest each series' test window with it: (bundle version, symbol -> result)."""
    from ffe.training.pipeline import train

    outcome = train(job.plan, job.out_dir)
    bundle = load_bundle(str(outcome.bundle_dir))
    results = {
        symbol: run_backtest(data[symbol], symbol, timeframe, bundle, start, end, job.config, asset_class)
        for symbol, (_fold, start, end, timeframe, asset_class) in job.windows.items()
    }
    return outcome.version, results


def _run_jobs(
    todo: list[_Job], data: Mapping[str, BarArrays], jobs: int, n_folds: int, log: Callable[[str], None] | None
) -> list[tuple[str, dict[str, BacktestResult]]]:
    """Every job's outcome, in ``todo``'s order: here one by one, or ``jobs`` at a time in fresh processes (each job
    is seeded and self-contained, so the results are the same either way)."""

    def say(job: _Job, what: str) -> None:
        if log:
            log(f"fold {job.fold + 1}/{n_folds} seed {job.seed}: {what}")

    if jobs <= 1 or len(todo) <= 1:
        out = []
        for job in todo:
            say(job, f"one bundle on {len(job.windows)} series' training bars")
            out.append(_outcome(job, functools.partial(_run_job, job, data)))
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker (no forked torch or Postgres state)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context) as pool:
        futures = []
        for job in todo:
            futures.append(pool.submit(_run_job, job, {s: data[s] for s in job.windows}))
        results = []
        try:
            for job, future in zip(todo, futures, strict=True):
                results.append(_outcome(job, future.result))
                say(job, f"done ({len(job.windows)} series)")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the jobs not started yet never start
            raise
        return results


def _outcome(
    job: _Job, run: Callable[[], tuple[str, dict[str, BacktestResult]]]
) -> tuple[str, dict[str, BacktestResult]]:
    """``run()``, a failure of the user's data or settings (InvalidInputError, ValueError) named by its fold."""
    try:
        return run()
    except ValueError as exc:
        bars = ", ".join(f"{s} {window[0].train_hi}" for s, window in job.windows.items())
        raise FoldFailedError(
            f"fold {job.fold + 1} seed {job.seed}, training on the bars before each test window ({bars}): {exc}"
        ) from exc


class FoldFailedError(InvalidInputError):
    """A fold could not be trained or backtested on the data and settings it was given (too few training bars for
    the config's episodes, a file the training refuses): one line naming the fold."""


def evaluated_config(plan: TrainPlan) -> dict[str, Any]:
    """The plan's recorded training config without what a fold or seed sets (``seed``, ``meta.seed``, the cuts):
    the report's ``model.training_config``, which the promotion gate holds against the version's own."""
    from ffe.training.provenance import training_config

    config = training_config(plan)
    config.pop("seed", None)
    config.pop("train_end", None)
    config.get("meta", {}).pop("seed", None)
    return config


# --- aggregation --------------------------------------------------------------------------------------


def _fold_run(k: int, seed: int, fold: Fold, result: BacktestResult) -> FoldRun:
    return FoldRun(
        fold=k,
        seed=seed,
        train_bars=fold.train_hi - fold.train_lo,
        test_start=f"{result.times[0]}Z",
        test_end=f"{result.times[-1]}Z",
        test_bars=result.bars,
        bundle_version=result.bundle_version,
        metrics={name: {k: float(v) for k, v in run.metrics.as_dict().items()} for name, run in result.runs.items()},
        returns={name: run.returns for name, run in result.runs.items()},
    )


def _path(runs: Sequence[FoldRun], row: str, seed: int) -> NDArray[np.float64] | None:
    """One seed's out-of-sample path of ``row``: its folds' returns in time order (None if a fold lacks the row)."""
    mine = sorted((r for r in runs if r.seed == seed), key=lambda r: r.fold)
    if any(row not in r.returns for r in mine):
        return None
    return np.concatenate([r.returns[row] for r in mine])


def _fold_path(runs: Sequence[FoldRun], row: str, fold: int) -> NDArray[np.float64]:
    """Fold ``fold``'s test returns of ``row``, averaged over seeds bar by bar."""
    return np.mean(np.stack([r.returns[row] for r in runs if r.fold == fold]), axis=0)


def _summarise(
    symbol: str,
    timeframe: str,
    ppy: float,
    n: int,
    cuts: list[Fold],
    runs: list[FoldRun],
    skipped: dict[str, str],
    block: int | None,
    n_boot: int,
    level: float,
) -> SeriesReport:
    seeds = sorted({r.seed for r in runs})
    names = list(dict.fromkeys(name for r in runs for name in r.returns))
    statistics: dict[str, Callable[[NDArray[np.float64]], float]] = {
        "sharpe": lambda r: stats.sharpe(r, ppy),
        "sortino": lambda r: stats.sortino(r, ppy),
        "total_return": stats.total_return,
        "max_drawdown": stats.max_drawdown,
    }
    rows: dict[str, RowSummary] = {}
    paths: dict[str, NDArray[np.float64]] = {}
    for name in names:
        per_seed = {s: _path(runs, name, s) for s in seeds}
        complete = {s: p for s, p in per_seed.items() if p is not None}
        if len(complete) != len(seeds):
            skipped.setdefault(name, "did not run in every fold")
            continue
        path = np.mean(np.stack(list(complete.values())), axis=0)
        paths[name] = path
        means = {m: float(np.mean([r.metrics[name][m] for r in runs])) for m in MEAN_METRICS}
        intervals = {
            m: stats.block_bootstrap_ci(path, f, block=block, n_boot=n_boot, level=level) for m, f in statistics.items()
        }
        by_fold = [
            stats.block_bootstrap_ci(
                _fold_path(runs, name, k), statistics["sharpe"], block=block, n_boot=n_boot, level=level
            )
            for k in sorted({r.fold for r in runs})
        ]
        rows[name] = RowSummary(
            means, intervals, {s: float(stats.sharpe(p, ppy)) for s, p in complete.items()}, by_fold
        )
    p_naive = p_hold = dsr = None
    if META in paths:
        meta = paths[META]
        if NAIVE in paths:
            p_naive = float(stats.prob_outperforms(meta, paths[NAIVE], ppy, block=block, n_boot=n_boot))
        if HOLD in paths:
            p_hold = float(stats.prob_outperforms(meta, paths[HOLD], ppy, block=block, n_boot=n_boot))
        dsr = _deflated(meta, [r.returns[META] for r in runs if META in r.returns])
    meta_paths = {seed: p for seed in seeds if META in paths and (p := _path(runs, META, seed)) is not None}
    return SeriesReport(symbol, timeframe, ppy, n, cuts, runs, rows, skipped, p_naive, p_hold, dsr, paths, meta_paths)


def _deflated(path: NDArray[np.float64], trials: list[NDArray[np.float64]]) -> float | None:
    """The deflated Sharpe ratio of the meta-controller's path (per-bar Sharpe), the trials being its seeds x
    folds test windows (each one configuration tried)."""
    sd = float(np.std(path, ddof=1)) if path.size > 1 else 0.0
    if sd == 0.0 or len(trials) < 2:
        return None
    centred = (path - path.mean()) / float(np.std(path))
    skew, kurtosis = float(np.mean(centred**3)), float(np.mean(centred**4))
    trial_sharpes = [float(t.mean() / t.std(ddof=1)) if t.size > 1 and t.std(ddof=1) > 0 else 0.0 for t in trials]
    return float(stats.deflated_sharpe(float(path.mean()) / sd, path.size, skew, kurtosis, trial_sharpes))


# --- output -------------------------------------------------------------------------------------------


def _series_dict(s: SeriesReport) -> dict[str, Any]:
    return {
        "timeframe": s.timeframe,
        "periods_per_year": s.periods_per_year,
        "bars": s.bars,
        "bars_sha256": s.bars_sha256,
        "folds": [{"train": [f.train_lo, f.train_hi], "test": [f.test_lo, f.test_hi]} for f in s.folds],
        "runs": [
            {
                "fold": r.fold,
                "seed": r.seed,
                "train_bars": r.train_bars,
                "test_start": r.test_start,
                "test_end": r.test_end,
                "test_bars": r.test_bars,
                "bundle_version": r.bundle_version,
                "metrics": {name: _finite(m) for name, m in r.metrics.items()},
            }
            for r in s.runs
        ],
        "rows": {
            name: {
                "mean": _finite(row.metrics),
                "interval": {m: _interval(i) for m, i in row.intervals.items()},
                "sharpe_by_seed": {str(k): _num(v) for k, v in row.sharpe_by_seed.items()},
                "sharpe_by_fold": [_interval(i) for i in row.sharpe_by_fold],
            }
            for name, row in s.rows.items()
        },
        "skipped": s.skipped,
        "meta_controller": {
            "p_sharpe_above_naive_router": _num(s.p_meta_beats_naive),
            "p_sharpe_above_buy_and_hold": _num(s.p_meta_beats_buy_and_hold),
            "deflated_sharpe": _num(s.meta_deflated_sharpe),
        },
    }


def _interval(i: stats.Interval) -> dict[str, float | None]:
    return {"low": _num(i.low), "estimate": _num(i.estimate), "high": _num(i.high), "level": _num(i.level)}


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _finite(d: dict[str, float]) -> dict[str, float | None]:
    return {k: _num(v) for k, v in d.items()}


HEADERS = ("return", "sharpe", "path sharpe [CI]", "sortino", "max dd", "turnover", "churn", "max disr.")


def format_table(report: EvaluationReport) -> str:
    """One plain table per series: each row's mean figures, its out-of-sample path's Sharpe with its interval, then
    the meta-controller's probabilities and deflated Sharpe."""
    from ffe.terminal import Column, render, table

    document = report.as_dict()
    blocks: list[str] = []
    for symbol, s in document["series"].items():
        columns = [Column("strategy")] + [Column(h, "right") for h in HEADERS]
        lines = [[name, *_cells_doc(row)] for name, row in s["rows"].items()]
        skipped = [f"skipped {k}: {v}" for k, v in s["skipped"].items()]
        blocks.append(render(_title(document, symbol), table(columns, lines), _comparisons(s), *skipped))
    return "\n\n".join(blocks)


def format_markdown(document: dict[str, Any]) -> str:
    """An evaluation's JSON document (``EvaluationReport.as_dict``, or a saved ``evaluation.json``) as Markdown
    (``report.md``, the model card's tables): a summary across series of the meta-controller and its bars, then
    every row of every series. A page of its own: a title, its contents and two sections."""
    bars = (META, NAIVE, "regime_switch", HOLD)
    head = "| series | " + " | ".join(f"{b} Sharpe [CI]" for b in bars) + " | P(meta > naive) | P(meta > B&H) | DSR |"
    out = ["# Walk-forward evaluation", "", "- [Summary](#summary)", "- [Every strategy](#every-strategy)"]
    out += ["", "## Summary", "", head, "|---" * (len(bars) + 4) + "|"]
    for symbol, s in document["series"].items():
        rows, meta = s["rows"], s["meta_controller"]
        cells = [_ci_doc(rows[b]["interval"]["sharpe"]) if b in rows else "n/a" for b in bars]
        probabilities = (
            meta["p_sharpe_above_naive_router"],
            meta["p_sharpe_above_buy_and_hold"],
            meta["deflated_sharpe"],
        )
        out.append(f"| {symbol} {s['timeframe']} | " + " | ".join([*cells, *map(_pct, probabilities)]) + " |")
    out += ["", "## Every strategy"]
    for symbol, s in document["series"].items():
        out += ["", f"**{_title(document, symbol)}**", "", "| strategy | " + " | ".join(HEADERS) + " |"]
        out.append("|---" + "|---:" * len(HEADERS) + "|")
        out += [f"| {name} | " + " | ".join(_cells_doc(row)) + " |" for name, row in s["rows"].items()]
        out += ["", _comparisons(s)]
    return "\n".join(out) + "\n"


def _title(document: dict[str, Any], symbol: str) -> str:
    s = document["series"][symbol]
    folds = s["folds"]
    return (
        f"{symbol} {s['timeframe']}: {len(folds)} folds x {len(document['seeds'])} seeds, test bars "
        f"{folds[0]['test'][0]}..{folds[-1]['test'][1] - 1} of {s['bars']}; path Sharpe with its "
        f"{document['config']['level']:.0%} block-bootstrap interval, the other columns means over folds and seeds"
    )


def _comparisons(s: dict[str, Any]) -> str:
    meta = s["meta_controller"]
    return (
        f"P(meta Sharpe > naive router) {_pct(meta['p_sharpe_above_naive_router'])}, "
        f"P(> buy and hold) {_pct(meta['p_sharpe_above_buy_and_hold'])}, "
        f"deflated Sharpe {_pct(meta['deflated_sharpe'])}"
    )


def _cells_doc(row: dict[str, Any]) -> list[str]:
    m = row["mean"]
    return [
        _fmt(m["total_return"], "{:+.2%}"),
        _fmt(m["sharpe"], "{:+.2f}"),
        _ci_doc(row["interval"]["sharpe"]),
        _fmt(m["sortino"], "{:+.2f}"),
        _fmt(m["max_drawdown"], "{:.2%}"),
        _fmt(m["turnover"], "{:.4f}"),
        _fmt(m["churn_rate"], "{:.3f}"),
        _fmt(m["max_disruption"], "{:.3f}"),
    ]


def _ci_doc(i: dict[str, float | None]) -> str:
    if i["estimate"] is None or i["low"] is None or i["high"] is None:
        return "n/a"
    return f"{i['estimate']:+.2f} [{i['low']:+.2f}, {i['high']:+.2f}]"


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else spec.format(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _time(value: np.datetime64) -> datetime:
    micros = int(value.astype("datetime64[us]").astype(np.int64))
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


__all__ = [
    "SCHEMA",
    "EvaluationReport",
    "Fold",
    "FoldFailedError",
    "FoldRun",
    "RowSummary",
    "SeriesReport",
    "calendar_cuts",
    "evaluate",
    "evaluated_config",
    "folds",
    "format_markdown",
    "format_table",
    "full_plan",
    "quick_plan",
]
