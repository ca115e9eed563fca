"""Synthetic ``ffe evaluate`` folders (schema ffe.evaluation/2: evaluation.json + paths.npz) for promotion-gate tests.

Only what the gate reads is filled in (docs/evaluation.md has the whole schema): per series ``periods_per_year``,
``folds`` and ``rows``; ``seeds``, ``n_folds``, ``config`` and ``model`` at the top; the paths keyed SYMBOL/ROW.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

N_BARS = 400
FOLDS = (((0, 200), (200, 300)), ((0, 300), (300, 400)))  # two expanding folds over 400 bars: 200 test bars


def returns(seed: int, mean: float, n: int = 200, sd: float = 0.01) -> np.ndarray:
    """Seeded normal per-bar returns."""
    return np.random.default_rng(seed).normal(mean, sd, n)


def write_evidence(
    folder: Path,
    paths: Mapping[str, Mapping[str, np.ndarray]],
    *,
    folds: Sequence[tuple[tuple[int, int], tuple[int, int]]] = FOLDS,
    periods_per_year: float = 8760.0,
    registered_version: str | None = None,
    bars_sha256: str | None = None,
) -> Path:
    """``folder`` holding an evaluation of ``paths`` ({symbol: {row: returns}}) on ``folds``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    series = {
        symbol: {
            "timeframe": "1h",
            "periods_per_year": periods_per_year,
            "bars": N_BARS,
            "folds": [{"train": list(train), "test": list(test)} for train, test in folds],
            "rows": {row: {} for row in rows},
            **({"bars_sha256": bars_sha256} if bars_sha256 is not None else {}),
        }
        for symbol, rows in paths.items()
    }
    report = {
        "schema": "ffe.evaluation/2",
        "seeds": [1],
        "n_folds": len(folds),
        "config": {},
        "model": {"registered_version": registered_version, "bundle_versions": [], "training_config": {}},
        "series": series,
    }
    (folder / "evaluation.json").write_text(json.dumps(report))
    arrays = {f"{symbol}/{row}": np.asarray(r) for symbol, rows in paths.items() for row, r in rows.items()}
    np.savez(folder / "paths.npz", **arrays)  # type: ignore[arg-type]
    return folder
