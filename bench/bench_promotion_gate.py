"""The promotion gate's bootstrap (``ffe.evaluation.gate.decide``: 2000 paired resamples per series), beside the
plain loop it replaced (one ``stats.sharpe`` call per resample and path) on the same resamples, measured in the
same run. Evidence: 8 series x 3000 test bars of synthetic returns, candidate against its naive router and a
champion. Prints figures; asserts nothing. The API's Lambda runs this on ``PUT /models/champion``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from ffe.evaluation import stats
from ffe.evaluation.gate import GateConfig, decide, load_evidence
from tests.fakes.evidence import write_evidence

SERIES, BARS, REPEATS = 8, 3000, 5
rng = np.random.default_rng(0)
naive = {f"S{i}": rng.normal(0.0, 0.01, BARS) for i in range(SERIES)}
meta = {s: r + rng.normal(0.0002, 0.002, BARS) for s, r in naive.items()}
config = GateConfig()


def plain_loop() -> None:
    """The pre-vectorised statistic: a Python loop over resamples (both comparisons, every series)."""
    for _ in range(2):
        for i, (symbol, a) in enumerate(meta.items()):
            b = naive[symbol]
            for idx in stats._resamples(BARS, None, config.n_boot, i):
                stats.sharpe(a[idx], 252) - stats.sharpe(b[idx], 252)


def median_seconds(call: object) -> float:
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


with TemporaryDirectory() as tmp:
    paths = {s: {"meta_controller": meta[s], "naive_router": naive[s]} for s in naive}
    folds = (((0, BARS), (BARS, 2 * BARS)),)
    candidate = load_evidence(write_evidence(Path(tmp) / "candidate", paths, folds=folds))
    champion = load_evidence(write_evidence(Path(tmp) / "champion", paths, folds=folds))
    gate = median_seconds(lambda: decide(candidate, champion, config))
    loop = median_seconds(plain_loop)

print(f"promotion gate, {SERIES} series x {BARS} bars, {config.n_boot} resamples, 2 comparisons (median of {REPEATS})")
print(f"  plain loop over resamples (reference)  {loop * 1e3:8.1f} ms")
print(f"  decide (block sums, no resample built) {gate * 1e3:8.1f} ms   ({loop / gate:.1f}x faster)")
