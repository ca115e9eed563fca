"""The promotion gate: does a registered version's walk-forward evidence beat the champion and the naive router?

Pure (numpy and ``ffe.evaluation.stats``; no MLflow): ``ffe models promote`` downloads the evidence folders that
``ffe evaluate --version V`` attached to the registered versions and asks :func:`decide`. See docs/models.md,
"Promotion gate".

Evidence (:func:`load_evidence`) is an ``ffe evaluate`` report folder: ``evaluation.json`` (schema
``ffe.evaluation/2``, docs/evaluation.md) and ``paths.npz``, each row's out-of-sample per-bar returns over every
test window in time order, averaged over seeds, keyed ``SYMBOL/ROW``.

The statistic (:func:`decide`). For a bar (the candidate's own naive-router path, or the champion's
meta-controller paths): over the bar's series, P(mean over series of [metric(candidate meta paths) - metric(bar
paths)] > 0), a meta-controller's metric being the mean over its seeds' own paths, estimated by a paired circular
block bootstrap (``stats.metric_draws``): within a series every path takes the same resampled bars,
series are resampled independently (their own seeds), and each resample's differences are averaged over the
series. A tie counts one half, as in ``stats.prob_outperforms``, so identical evidence gives 0.5. The comparison
passes when that probability is at least the configured confidence. Paths pair only when both evaluations cut the
same folds of the same bars: anything else is refused, naming the series and what differs.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ffe.evaluation import stats
from ffe.evaluation.files import PATHS_NPZ, REPORT_JSON, SCHEMA
from ffe.evaluation.gate_config import (  # re-exported: the gate's settings live apart, light for the CLI parser
    CONFIDENCE_ENV,
    DEFAULT_CONFIDENCE,
    DEFAULT_METRIC,
    METRIC_ENV,
    METRICS,
    GateConfig,
)

__all__ = [
    "CONFIDENCE_ENV",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_METRIC",
    "METRICS",
    "METRIC_ENV",
    "Comparison",
    "Evidence",
    "GateConfig",
    "SeriesEvidence",
    "SeriesFigures",
    "Side",
    "Verdict",
    "decide",
    "judge",
    "load_evidence",
    "not_compared",
]

META, NAIVE = "meta_controller", "naive_router"
CHAMPION = "champion"
Folds = tuple[tuple[int, int, int, int], ...]  # (train lo, train hi, test lo, test hi) per fold, hi exclusive


@dataclass(frozen=True)
class SeriesEvidence:
    """One series of an evaluation: its bars per year, its folds and each row's out-of-sample path."""

    periods_per_year: float
    folds: Folds
    paths: Mapping[str, NDArray[np.float64]]
    bars_sha256: str | None = None  # the evaluated prices' digest; None in evidence written before it was recorded
    meta_by_seed: Mapping[int, NDArray[np.float64]] = field(default_factory=dict)  # each seed's own bundle's path


@dataclass(frozen=True)
class Evidence:
    """A loaded ``ffe evaluate`` folder (:func:`load_evidence`)."""

    folder: Path
    series: Mapping[str, SeriesEvidence]
    registered_version: str | None
    bundle_versions: tuple[str, ...]
    training_config: Mapping[str, Any] | None = None  # the folds' config less seed and cuts (``ffe evaluate``)


@dataclass(frozen=True)
class SeriesFigures:
    """Point figures of one series: the metric of the candidate's meta path, of the bar's path, and their gap."""

    candidate: float
    bar: float

    @property
    def difference(self) -> float:
        return self.candidate - self.bar


@dataclass(frozen=True)
class Comparison:
    """The candidate against one bar: P(it beats the bar), the per-series figures, pass or fail and why."""

    kind: str  # NAIVE or CHAMPION: what the bar is
    bar: str  # how the bar is named to the user ("naive_router", "champion v3")
    probability: float | None  # None: not computed (the evidence could not be compared)
    per_series: Mapping[str, SeriesFigures]
    passed: bool
    reason: str

    def line(self) -> str:
        mark = "pass" if self.passed else "FAIL"
        return f"{mark} vs {self.bar}: {self.reason}"


@dataclass(frozen=True)
class Verdict:
    """Every comparison the gate made; it passes only when each one does (and there was at least one)."""

    config: GateConfig
    comparisons: tuple[Comparison, ...]

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    def probabilities(self) -> dict[str, float]:
        """P(the candidate beats the bar) by kind of bar (NAIVE, CHAMPION), where it could be computed."""
        return {c.kind: c.probability for c in self.comparisons if c.probability is not None}

    def lines(self) -> list[str]:
        head = "passed" if self.passed else "refused"
        out = [f"promotion gate {head} ({self.config.metric}, confidence {self.config.confidence:g}):"]
        for c in self.comparisons:
            out.append(f"  {c.line()}")
            out.extend(
                f"    {symbol}: candidate {f.candidate:+.4f}, {c.bar} {f.bar:+.4f}, gap {f.difference:+.4f}"
                for symbol, f in sorted(c.per_series.items())
            )
        return out


def not_compared(kind: str, bar: str, reason: str) -> Comparison:
    """A comparison that could not be made (missing or unreadable evidence): it fails, saying why."""
    return Comparison(kind, bar, None, {}, False, reason)


def load_evidence(folder: Path | str) -> Evidence:
    """Read and validate an ``ffe evaluate`` folder.

    Raises:
        ValueError: a missing file, another schema, a malformed field, a missing or non-finite path, naming it.
    """
    root = Path(folder)
    report_file, paths_file = root / REPORT_JSON, root / PATHS_NPZ
    for f in (report_file, paths_file):
        if not f.is_file():
            raise ValueError(f"evidence {root}/ has no {f.name}")
    try:
        report = json.loads(report_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"evidence {report_file} is not JSON: {exc}") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        got = report.get("schema") if isinstance(report, dict) else type(report).__name__
        raise ValueError(f"evidence {report_file} has schema {got!r}, the gate reads {SCHEMA!r}")
    series_doc = report.get("series")
    if not isinstance(series_doc, dict) or not series_doc:
        raise ValueError(f"evidence {report_file} holds no series")
    try:
        with np.load(paths_file, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key], dtype=np.float64) for key in npz.files}
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # not an npz, cut short
        raise ValueError(f"evidence {paths_file} is not a numpy .npz of float arrays: {exc}") from None
    odd = sorted(key for key in arrays if "/" not in key)
    if odd:
        raise ValueError(f"evidence {paths_file}: array {odd[0]!r} is not named SYMBOL/ROW")
    series = {symbol: _series(report_file, symbol, doc, arrays) for symbol, doc in series_doc.items()}
    model = report.get("model") or {}
    if not isinstance(model, dict):
        raise ValueError(f"evidence {report_file}: 'model' is not an object")
    registered = model.get("registered_version")
    bundles = model.get("bundle_versions") or []
    config = model.get("training_config")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"evidence {report_file}: 'model.training_config' is not an object")
    return Evidence(
        folder=root,
        series=series,
        registered_version=None if registered is None else str(registered),
        bundle_versions=tuple(str(b) for b in bundles),
        training_config=config,
    )


def _series(report_file: Path, symbol: str, doc: Any, arrays: Mapping[str, NDArray[np.float64]]) -> SeriesEvidence:
    where = f"evidence {report_file}, series {symbol}"
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: not an object")
    ppy = doc.get("periods_per_year")
    if isinstance(ppy, bool) or not isinstance(ppy, int | float) or not math.isfinite(ppy) or ppy <= 0:
        raise ValueError(f"{where}: periods_per_year must be a positive number, got {ppy!r}")
    folds = _folds(where, doc.get("folds"))
    # "SYMBOL/ROW" only: deeper keys ("SYMBOL/meta_controller/seed1", each seed's own path) are not the rows' paths
    paths = {
        row: a for key, a in arrays.items() for sym, row in [key.split("/", 1)] if sym == symbol and "/" not in row
    }
    for row in (META, NAIVE):
        if row not in paths:
            raise ValueError(f"{where}: paths.npz has no {symbol}/{row} path")
    for row, path in paths.items():
        if path.ndim != 1 or path.size < 2:
            raise ValueError(
                f"{where}: path {symbol}/{row} must be 1-D with at least 2 returns, has shape {path.shape}"
            )
        if not np.all(np.isfinite(path)):
            raise ValueError(f"{where}: path {symbol}/{row} holds non-finite returns")
    sizes = {row: path.size for row, path in paths.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{where}: its rows' paths differ in length ({sizes}); they must cover the same bars")
    digest = doc.get("bars_sha256")
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise ValueError(f"{where}: bars_sha256 must be 64 lowercase hex digits, got {digest!r}")
    by_seed = _seed_paths(where, symbol, arrays, paths[META].size)
    return SeriesEvidence(float(ppy), folds, paths, bars_sha256=digest, meta_by_seed=by_seed)


def _seed_paths(
    where: str, symbol: str, arrays: Mapping[str, NDArray[np.float64]], size: int
) -> dict[int, NDArray[np.float64]]:
    """``SYMBOL/meta_controller/seed<S>``: each seed's own meta-controller path, on the rows' bars."""
    prefix = f"{symbol}/{META}/seed"
    out: dict[int, NDArray[np.float64]] = {}
    for key, path in arrays.items():
        if not key.startswith(prefix):
            continue
        if not key[len(prefix) :].isdigit():
            raise ValueError(f"{where}: path {key} does not name a seed")
        if path.shape != (size,) or not np.all(np.isfinite(path)):
            raise ValueError(f"{where}: path {key} must hold {size} finite returns, as the rows do")
        out[int(key[len(prefix) :])] = path
    return out


def _folds(where: str, doc: Any) -> Folds:
    if not isinstance(doc, list) or not doc:
        raise ValueError(f"{where}: folds must be a non-empty list")
    out = []
    for i, fold in enumerate(doc):
        try:
            (train_lo, train_hi), (test_lo, test_hi) = fold["train"], fold["test"]
            bounds = tuple(int(b) for b in (train_lo, train_hi, test_lo, test_hi))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: fold {i} is not {{'train': [lo, hi], 'test': [lo, hi]}}: {fold!r}") from None
        if not bounds[0] <= bounds[1] <= bounds[2] < bounds[3]:
            raise ValueError(
                f"{where}: fold {i} trains on [{bounds[0]}, {bounds[1]}) and tests on [{bounds[2]}, {bounds[3]})"
            )
        out.append((bounds[0], bounds[1], bounds[2], bounds[3]))
    return tuple(out)


def decide(
    candidate: Evidence,
    champion: Evidence | None,
    config: GateConfig,
    *,
    champion_label: str = "champion",
) -> Verdict:
    """The candidate's meta-controller against its own naive router and, when there is one, the champion's.

    ``champion`` None means there is no champion at all (a first version): only the naive router is a bar. A
    champion WITHOUT evidence is refused by :func:`judge`, since nothing can show it is beaten.
    """
    comparisons = [_compare(candidate, candidate, NAIVE, NAIVE, config)]
    if champion is not None:
        comparisons.append(_compare(candidate, champion, CHAMPION, champion_label, config))
    return Verdict(config, tuple(comparisons))


@dataclass(frozen=True)
class Side:
    """One side of a promotion as its caller found it: the loaded evidence, or why there is none (``problem``),
    its name in a message (``label``) and what a user does about a missing evidence (``fix``)."""

    label: str
    evidence: Evidence | None = None
    problem: str | None = None
    fix: str = ""

    def why(self, reason: str) -> str:
        return f"{reason}: {self.fix}" if self.fix else reason


def judge(candidate: Side, bar: Side | None, config: GateConfig) -> Verdict:
    """:func:`decide`, or a refusal naming what is missing: the CLI's and the API's gate.

    ``bar`` None means there is no champion (or it is the candidate itself): only the naive router is a bar. A bar
    without evidence (none, or unusable: its ``problem``) fails its comparison, since nothing shows it is beaten;
    a candidate without evidence fails the naive router's (and the bar's, when the bar has some).
    """
    unshown = None
    if bar is not None and bar.evidence is None:
        problem = bar.problem or f"{bar.label} has no walk-forward evidence"
        unshown = not_compared(CHAMPION, bar.label, bar.why(f"{problem}, so nothing shows {candidate.label} beats it"))
    if candidate.evidence is None:
        why_not = candidate.problem or f"{candidate.label} has no walk-forward evidence"
        comparisons = [not_compared(NAIVE, NAIVE, candidate.why(why_not))]
        if unshown is not None:
            comparisons.append(unshown)
        elif bar is not None and bar.evidence is not None:
            comparisons.append(not_compared(CHAMPION, bar.label, why_not))
        return Verdict(config, tuple(comparisons))
    verdict = decide(
        candidate.evidence, None if bar is None else bar.evidence, config, champion_label=bar.label if bar else CHAMPION
    )
    return verdict if unshown is None else Verdict(config, (*verdict.comparisons, unshown))


def _compare(candidate: Evidence, bar: Evidence, kind: str, label: str, config: GateConfig) -> Comparison:
    bar_row = NAIVE if kind == NAIVE else META
    left_out = sorted(set(bar.series) - set(candidate.series))
    if left_out:  # the candidate would choose the series it is judged on
        return not_compared(
            kind, label, f"the candidate's evidence leaves out {', '.join(left_out)}, which {label} was evaluated on"
        )
    shared = sorted(bar.series)  # every one of them, and load_evidence refuses evidence without series
    mismatches = [m for s in shared if (m := _mismatch(s, candidate.series[s], bar.series[s]))]
    if mismatches:
        return not_compared(
            kind,
            label,
            "the evaluations are not on the same bars, re-evaluate both: " + "; ".join(mismatches),
        )
    draws = np.zeros(config.n_boot)
    figures = {}
    for symbol in shared:
        mine, theirs = candidate.series[symbol], bar.series[symbol]
        statistic = _statistic(config.metric, mine.periods_per_year)
        ours = _served(mine)
        others = _served(theirs) if bar_row == META else [theirs.paths[NAIVE]]
        figures[symbol] = SeriesFigures(
            float(np.mean([statistic(a) for a in ours])), float(np.mean([statistic(b) for b in others]))
        )
        seed = _series_seed(config.seed, symbol)  # one seed per series: every path takes the same resamples
        draws += _mean_draws(ours, config, mine.periods_per_year, seed) - _mean_draws(
            others, config, mine.periods_per_year, seed
        )
    draws /= len(shared)
    probability = float((np.sum(draws > 0) + 0.5 * np.sum(draws == 0)) / config.n_boot)
    gap = float(np.mean([f.difference for f in figures.values()]))
    passed = probability >= config.confidence
    relation = ">=" if passed else "<"
    reason = (
        f"P(mean {config.metric} gap > 0) = {probability:.3f} {relation} {config.confidence:g}"
        f" over {len(shared)} series ({', '.join(shared)}); mean gap {gap:+.4f}"
    )
    return Comparison(kind, label, probability, figures, passed, reason)


def _mean_draws(
    paths: Sequence[NDArray[np.float64]], config: GateConfig, periods_per_year: float, seed: int
) -> NDArray[np.float64]:
    """Per resample, the mean over ``paths`` of the configured metric (``stats.metric_draws``)."""
    return np.mean(
        [stats.metric_draws(p, config.metric, periods_per_year, n_boot=config.n_boot, seed=seed) for p in paths],
        axis=0,
    )


def _served(series: SeriesEvidence) -> list[NDArray[np.float64]]:
    """The meta-controller paths to judge: each seed's own (the version serves one bundle, not the average of
    several, whose path is smoother than any one of them), or the seed-averaged row where none was recorded."""
    return list(series.meta_by_seed.values()) or [series.paths[META]]


def _mismatch(symbol: str, a: SeriesEvidence, b: SeriesEvidence) -> str | None:
    if a.folds != b.folds:
        return f"{symbol}: folds differ (candidate {_fold_text(a.folds)}, other {_fold_text(b.folds)})"
    n_a, n_b = next(iter(a.paths.values())).size, next(iter(b.paths.values())).size
    if n_a != n_b:
        return f"{symbol}: test bars differ ({n_a} against {n_b})"
    if a.periods_per_year != b.periods_per_year:
        return f"{symbol}: bars per year differ ({a.periods_per_year:g} against {b.periods_per_year:g})"
    if a.bars_sha256 and b.bars_sha256 and a.bars_sha256 != b.bars_sha256:
        return f"{symbol}: evaluated on other prices (bars {a.bars_sha256[:12]} against {b.bars_sha256[:12]})"
    return None


def _fold_text(folds: Folds) -> str:
    return " ".join(f"test[{lo},{hi})" for _, _, lo, hi in folds)


def _statistic(metric: str, periods_per_year: float) -> Callable[[NDArray[np.float64]], float]:
    if metric == "sharpe":
        return lambda r: stats.sharpe(r, periods_per_year)
    if metric == "sortino":
        return lambda r: stats.sortino(r, periods_per_year)
    return stats.total_return


def _series_seed(seed: int, symbol: str) -> int:
    """A seed per series (stable across runs and processes, unlike ``hash``): series resample independently."""
    return seed * 1_000_003 + zlib.crc32(symbol.encode())
