"""The inference endpoint's RL path: the predictor alone, and ``POST /invocations`` over loopback.

Prints figures; asserts nothing. Real BTCUSD hourly decisions (bundled bars, champion regime model and
TorchScript meta-controller), batch 1 and 64, LLM voter off (the latency-critical path), p50/p95 in ms.
Run: ``.venv/bin/python bench/bench_inference.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit" / "inference"))
from conftest import build_instance

from ffe.contracts import InferenceRequest
from gpu_inference.predictor import Predictor
from gpu_inference.serve import serve_in_thread, settle

RUNS = 200


def percentiles(fn: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    for _ in range(10):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(samples, n=100)
    return q[49], q[94]


predictor = Predictor.load("bundled")
requests = {n: InferenceRequest(instances=[build_instance(offset=i) for i in range(n)], llm=False) for n in (1, 64)}
settle()  # as the container does once its models have loaded
print(f"inference RL path on {predictor.device_name}, model {predictor.version} ({RUNS} runs each, ms)")
for n, request in requests.items():
    p50, p95 = percentiles(lambda request=request: predictor.predict(request))
    print(f"  predictor       batch {n:>2}   p50 {p50:7.2f}   p95 {p95:7.2f}")

server, stop = serve_in_thread(predictor)
try:
    with httpx.Client(base_url=server.url, headers={"Content-Type": "application/json"}) as client:
        for n, request in requests.items():
            body = request.model_dump_json().encode()

            def call(body: bytes = body) -> None:
                client.post("/invocations", content=body).raise_for_status()

            p50, p95 = percentiles(call)
            print(
                f"  /invocations    batch {n:>2}   p50 {p50:7.2f}   p95 {p95:7.2f}   ({len(body) / 1024:.0f} KiB body)"
            )
finally:
    stop()
