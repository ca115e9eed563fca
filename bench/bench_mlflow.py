"""MLflow metric logging on the PostgreSQL backend store, 20 concurrent runs. Prints figures; asserts nothing.

Each run logs ``--steps`` steps of ``--metrics`` metrics, one ``log_batch`` per step (``Tracker.log_metrics``),
from a fresh ``mlflow`` database in an embedded PostgreSQL (schema initialization raced too). Printed:
total metrics, logging seconds, metrics/s overall, p50 of each run's log_batch latency; for 20 threads in
one process and 20 processes (separate training jobs); then one run alone, batched and one call per metric.

For scale: the product's previous tracking setup reached 102 metrics/s; the target is > 200.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ffe.local.postgres import EmbeddedPostgres
from ffe.training.tracking import Tracker, tracking_uri

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--runs", type=int, default=20)
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--metrics", type=int, default=5)
ARGS = parser.parse_args()
NAMES = [f"m{k}" for k in range(ARGS.metrics)]


def train(uri: str, artifacts: str, i: int, barrier: Any) -> tuple[float, float, list[float]]:
    """One trainer: connect, wait for the others, log every step; (start, end, per-batch seconds)."""
    tracker = Tracker(uri, "bench", artifacts)
    run_id = tracker.start_run(f"trainer-{i}", params={"seed": i})
    barrier.wait()
    latencies = []
    start = time.monotonic()
    for step in range(ARGS.steps):
        t0 = time.perf_counter()
        tracker.log_metrics(run_id, {m: i + k + step / ARGS.steps for k, m in enumerate(NAMES)}, step=step)
        latencies.append(time.perf_counter() - t0)
    end = time.monotonic()
    tracker.end_run(run_id)
    return start, end, latencies


def train_in_process(uri: str, artifacts: str, i: int, barrier: Any, results: Any) -> None:
    results.put(train(uri, artifacts, i, barrier))


def report(label: str, results: list[tuple[float, float, list[float]]], setup_s: float) -> None:
    total = len(results) * ARGS.steps * ARGS.metrics
    seconds = max(r[1] for r in results) - min(r[0] for r in results)
    per_run_p50 = [statistics.median(r[2]) for r in results]
    every = sorted(x for r in results for x in r[2])
    print(f"  {label}")
    print(f"    {total} metrics in {seconds:.2f} s = {total / seconds:7.0f} metrics/s   (set-up {setup_s:.1f} s)")
    print(
        f"    log_batch of {ARGS.metrics}: per-run p50 median {statistics.median(per_run_p50) * 1000:.1f} ms "
        f"(runs {min(per_run_p50) * 1000:.1f}-{max(per_run_p50) * 1000:.1f} ms), "
        f"all calls p95 {every[int(len(every) * 0.95)] * 1000:.1f} ms"
    )


def threads(uri: str, artifacts: str) -> None:
    barrier = threading.Barrier(ARGS.runs)
    results: list[tuple[float, float, list[float]]] = []
    t0 = time.monotonic()

    def one(i: int) -> None:
        results.append(train(uri, artifacts, i, barrier))

    pool = [threading.Thread(target=one, args=(i,)) for i in range(ARGS.runs)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    report(f"{ARGS.runs} runs, threads in one process (fresh database)", results, min(r[0] for r in results) - t0)


def processes(uri: str, artifacts: str) -> None:
    ctx = mp.get_context("fork")  # forked before this process opens any MLflow engine: each child has its own
    barrier, queue = ctx.Barrier(ARGS.runs), ctx.Queue()
    t0 = time.monotonic()
    pool = [ctx.Process(target=train_in_process, args=(uri, artifacts, i, barrier, queue)) for i in range(ARGS.runs)]
    for p in pool:
        p.start()
    results = [queue.get() for _ in pool]
    for p in pool:
        p.join()
    report(f"{ARGS.runs} runs, one process each (fresh database)", results, min(r[0] for r in results) - t0)


def single(uri: str, artifacts: str) -> None:
    tracker = Tracker(uri, "bench-single", artifacts)
    run_id = tracker.start_run("alone")
    steps = ARGS.steps * 2
    t0 = time.perf_counter()
    for step in range(steps):
        tracker.log_metrics(run_id, {m: k + step / steps for k, m in enumerate(NAMES)}, step=step)
    batched = time.perf_counter() - t0
    n = steps * ARGS.metrics
    print(f"  one run alone, log_batch per step:      {n} metrics in {batched:.2f} s = {n / batched:7.0f} metrics/s")
    t0 = time.perf_counter()
    for step in range(steps):
        for m in NAMES:
            tracker.client.log_metric(run_id, f"single.{m}", step / steps, step=step)
    each = time.perf_counter() - t0
    print(f"  one run alone, log_metric per value:    {n} metrics in {each:.2f} s = {n / each:7.0f} metrics/s")
    tracker.end_run(run_id)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "data") as pg:
        artifacts = (Path(tmp) / "mlartifacts").as_uri()
        print(f"MLflow tracking on {pg.kind}: {ARGS.runs} runs x {ARGS.steps} steps x {ARGS.metrics} metrics")
        print("  (previous system: 102 metrics/s; target > 200)")
        fresh: dict[str, str] = {}  # the environment is ignored: always the embedded cluster
        processes(tracking_uri(pg.url, database=f"mlflow_{uuid.uuid4().hex[:8]}", environ=fresh), artifacts)
        threads(tracking_uri(pg.url, database=f"mlflow_{uuid.uuid4().hex[:8]}", environ=fresh), artifacts)
        single(tracking_uri(pg.url, database=f"mlflow_{uuid.uuid4().hex[:8]}", environ=fresh), artifacts)
