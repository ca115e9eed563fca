"""The inference endpoint's RL path: the predictor alone, and ``POST /invocations`` over loopback.

Prints figures; asserts nothing. Real BTCUSD hourly decisions (bundled bars, champion regime model and
TorchScript meta-controller), batch 1 and 64, LLM voter off (the latency-critical path), p50/p95 in ms. Then an
experiment's cost at the endpoint: the same assets with a second version beside the first (each asset's
treatment instance in the same request, as InferDecision sends both arms), as a ratio to one version. Then the
endpoint's own cost side by side, samples taken in turns: the request's parse beside the former ``json.loads`` +
``model_validate``, and ``/invocations`` over loopback (httpx client, the real server in a thread) beside the
predictor alone, with the ratio. Run: ``PYTHONPATH=layers/core:. .venv/bin/python bench/bench_inference.py``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path

import httpx
import torch

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


def publish_variant(store: Path, version: str) -> None:
    """A second version: the shipped meta-controller with its first layer scaled, in ``store/<version>/``."""
    shipped = Path(str(resources.files("ffe.data.models")))
    folder = store / version
    shutil.copytree(shipped, folder, ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.md"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(shipped / "meta-controller.pt"), map_location="cpu")
        with torch.no_grad():
            dict(module.named_parameters())["layers.0.weight"].mul_(-3.0)
        torch.jit.save(module, str(folder / "meta-controller.pt"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": version}))


TREATMENT = "ffe-bench00000002"
store = Path(tempfile.mkdtemp(prefix="ffe-bench-models-"))
publish_variant(store, TREATMENT)
predictor = Predictor.load("bundled", store=str(store))
requests = {n: InferenceRequest(instances=[build_instance(offset=i) for i in range(n)], llm=False) for n in (1, 64)}
settle()  # as the container does once its models have loaded
print(f"inference RL path on {predictor.device_name}, model {predictor.version} ({RUNS} runs each, ms)")
for n, request in requests.items():
    p50, p95 = percentiles(partial(predictor.predict, request))
    print(f"  predictor       batch {n:>2}   p50 {p50:7.2f}   p95 {p95:7.2f}")


def both_arms(request: InferenceRequest) -> InferenceRequest:
    """Each instance and, after it, the same asset's treatment instance (the LLM vote it would reuse)."""
    instances = []
    for inst in request.instances:
        instances.append(inst.model_copy(update={"regime_model_version": predictor.version}))
        treatment = {"model_version": TREATMENT, "regime_model_version": TREATMENT, "llm_vote_from": len(instances) - 1}
        instances.append(inst.model_copy(update=treatment))
    return InferenceRequest(instances=instances, llm=False)


shadow = {n: both_arms(request) for n, request in requests.items() if n * 2 <= 256}
predictor.predict(shadow[1])  # load the second version once, as the first experiment call does
print("an experiment's two versions in one request vs one version (shadow overhead at the endpoint, ms)")
for n, request in shadow.items():
    one = percentiles(partial(predictor.predict, requests[n]))
    two = percentiles(partial(predictor.predict, request))
    print(
        f"  predictor       assets {n:>2}   1 version p50 {one[0]:6.2f} p95 {one[1]:6.2f}   "
        f"2 versions p50 {two[0]:6.2f} p95 {two[1]:6.2f}   ratio p50 {two[0] / one[0]:4.2f}   {two[0] - one[0]:+.2f} ms"
    )


def side_by_side(ours: Callable[[], object], reference: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    """p50 of ``ours`` and of ``reference``, sampled in turns (who goes first alternates), so both meet the same
    load from other processes."""
    for _ in range(10):
        ours(), reference()
    samples: tuple[list[float], list[float]] = ([], [])
    for run in range(runs):
        pair = ((0, ours), (1, reference))
        for side, fn in pair[:: -1 if run % 2 else 1]:
            t0 = time.perf_counter()
            fn()
            samples[side].append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


print("the endpoint's own cost, side by side in one run (p50 ms, samples taken in turns)")
body64 = requests[64].model_dump_json().encode()
fast, plain = side_by_side(
    partial(InferenceRequest.model_validate_json, body64),
    lambda: InferenceRequest.model_validate(json.loads(body64)),
)
print(
    f"  parse batch 64: model_validate_json {fast:6.2f}   json.loads + model_validate {plain:6.2f}   "
    f"ratio {fast / plain:4.2f}"
)
server, stop = serve_in_thread(predictor)
try:
    with httpx.Client(base_url=server.url, headers={"Content-Type": "application/json"}) as client:

        def call(body: bytes) -> None:
            client.post("/invocations", content=body).raise_for_status()

        for n, request in requests.items():
            body = request.model_dump_json().encode()
            http, alone = side_by_side(partial(call, body), partial(predictor.predict, request))
            print(
                f"  /invocations batch {n:>2} over loopback {http:6.2f}   predictor alone {alone:6.2f}   "
                f"ratio {http / alone:4.2f}"
            )
        print("the same paths, each timed on its own (p50 / p95 ms)")
        for n, request in requests.items():
            body = request.model_dump_json().encode()
            p50, p95 = percentiles(partial(call, body))
            print(
                f"  /invocations    batch {n:>2}   p50 {p50:7.2f}   p95 {p95:7.2f}   ({len(body) / 1024:.0f} KiB body)"
            )
        for n, request in shadow.items():
            single, double = requests[n].model_dump_json().encode(), request.model_dump_json().encode()
            one = percentiles(partial(call, single))
            two = percentiles(partial(call, double))
            print(
                f"  /invocations    assets {n:>2}   1 version p50 {one[0]:6.2f} p95 {one[1]:6.2f}   "
                f"2 versions p50 {two[0]:6.2f} p95 {two[1]:6.2f}   ratio p50 {two[0] / one[0]:4.2f}   "
                f"{two[0] - one[0]:+.2f} ms"
            )
finally:
    stop()
    shutil.rmtree(store, ignore_errors=True)
