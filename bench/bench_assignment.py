"""Experiment assignment per call, p50/p95 in microseconds, beside a bare BLAKE2b of the same bytes measured in
the same run (the ratio is what the domain adds). Prints figures; asserts nothing.

Issue 15 requires an assignment to cost under 1 ms.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ffe.domain.experiments import Experiment, ExperimentStatus, Mode, assign

N = 100_000
ASSETS = [f"ASSET{i:05d}" for i in range(1_000)]
# running, so acting_arm hashes (a draft would answer "control" without hashing)
EXPERIMENT = Experiment(
    "3f2b9c1e-6a4d-4e0b-9d7a-0c5e8f1a2b3c", "v1", "v2", Mode.SPLIT, datetime.now(UTC), status=ExperimentStatus.RUNNING
)


def timed(call: Callable[[str], object], n: int = N) -> tuple[float, float]:
    samples = []
    for i in range(n):
        asset = ASSETS[i % len(ASSETS)]
        t0 = time.perf_counter()
        call(asset)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def bare(asset: str) -> bytes:
    return hashlib.blake2b(f"{EXPERIMENT.id}\x1f{asset}".encode(), digest_size=8).digest()


for _ in range(2):  # the first round warms up; the second is reported
    hash_p50, hash_p95 = timed(bare)
    assign_p50, assign_p95 = timed(lambda asset: assign(EXPERIMENT.id, asset, 0.25))
    arm_p50, arm_p95 = timed(EXPERIMENT.acting_arm)

print(f"experiment assignment per call ({N:,} calls over {len(ASSETS):,} assets)")
print(f"  bare blake2b (8-byte digest)   p50 {hash_p50 * 1e6:6.2f} µs   p95 {hash_p95 * 1e6:6.2f} µs")
print(
    f"  assign(id, asset, share)       p50 {assign_p50 * 1e6:6.2f} µs   p95 {assign_p95 * 1e6:6.2f} µs"
    f"   ({assign_p50 / hash_p50:.1f}x the bare hash at p50)"
)
print(
    f"  Experiment.acting_arm(asset)   p50 {arm_p50 * 1e6:6.2f} µs   p95 {arm_p95 * 1e6:6.2f} µs"
    f"   ({arm_p50 / hash_p50:.1f}x)   budget: 1000 µs"
)
