"""Seconds per asset deciding N assets: one DecideBatch invocation beside the same assets through the five per-asset
functions one by one, measured interleaved in one run. Prints figures; asserts nothing.

Both sides run the real handlers in process, as Lambda calls them (``functions/*/handler.py``: event in, dict out),
on the same embedded PostgreSQL (the paper account's gate) and the inference container's own server on loopback
(bundled champion, CPU, LLM off) through the real SageMaker client:

- per asset: Fetch market data -> Check staleness -> Detect regime -> Infer decision -> Gate risk, each state handed
  to the next as JSON (Step Functions' hand-over), one endpoint request per asset (what the inline Map does);
- batch: ``functions/decide_batch`` with the same N assets as one ItemBatcher batch: the bars stay in the
  invocation, one endpoint request for all N.

What neither side pays here and a deployed cycle does (so the deployed gap is wider than these figures): Lambda's
invoke overhead and Step Functions' transitions, per state per asset on the inline Map, per batch with DecideBatch.

The assets are BENCH01..BENCH20, crypto, added to the built-in table for this process only (the replay provider and
the paper broker still read that table; a universe file's class reaches only the steps), each replaying the bundled
BTCUSD or ETHUSD hourly history (the replay provider's own datasets, aliased), fresh at the bench's as_of. Each
repeat is a new cycle (every gate reserves) and releases
its reservations after, so every repeat sizes against the same account. Medians of REPEATS, the two sides in turns,
after WARMUPS of each, not counted. Before any of it, the endpoint's policy is warmed for each batch size the bench
sends (SPECIALIZE rollouts each): TorchScript's profiling executor re-specializes the rollout on the first calls of
each new batch shape, up to ~0.5 s a call on this machine; the bench prints what that cost, then times the warm
endpoint (a fresh endpoint instance pays it once per batch size it is sent).

``--profile``: cProfile of the batch side at the largest N, the top functions by cumulative time.
"""

from __future__ import annotations

import cProfile
import importlib.util
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the sagemaker-runtime client goes to loopback
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import psycopg

from ffe import containers
from ffe.adapters import replay
from ffe.domain import universe
from ffe.domain.models import AssetClass
from ffe.local.postgres import EmbeddedPostgres
from ffe.store.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 5, 20)
REPEATS = 5
WARMUPS = 2
SPECIALIZE = 40
AS_OF = "2019-06-03T01:01:00Z"  # both series BUY here: every gate sizes (and the account fills up)
ASSETS = [f"BENCH{i:02d}" for i in range(1, 21)]
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:ffe-bench-decision-cycle:"
PER_ASSET = ("fetch_market_data", "check_staleness", "detect_regime", "infer_decision", "gate_risk")


class Context:
    """What the handlers and Powertools read of Lambda's context."""

    function_name = "ffe-bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ffe-bench"
    memory_limit_in_mb = 1024
    function_version = "$LATEST"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_functions.{name}", ROOT / "functions" / name / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def wire(state: dict[str, Any]) -> dict[str, Any]:
    """A state as the next Lambda gets it: Step Functions writes it as JSON, the runtime reads it."""
    received: dict[str, Any] = json.loads(json.dumps(state))
    return received


def per_asset(handlers: dict[str, Any], cycle_id: str, assets: list[str]) -> list[dict[str, Any]]:
    """The inline Map's chain for each asset, one after another (the Map runs 8 side by side: CPU time is the same)."""
    ctx, records = Context(), []
    for i, asset in enumerate(assets):
        task: dict[str, Any] = {"cycle_id": cycle_id, "as_of": AS_OF, "timeframe": "1h", "asset": asset}
        task |= {"execution_id": EXECUTION + cycle_id, "item": i, "models": None, "asset_class": "crypto"}
        state = wire(handlers["fetch_market_data"](wire(task), ctx))
        state["staleness"] = handlers["check_staleness"](wire(state), ctx)
        if state["staleness"]["stale"] or state["staleness"]["code"] != "fresh":
            records.append({"stale": True})
            continue
        state["regime"] = handlers["detect_regime"](wire(state), ctx)
        state["decision"] = handlers["infer_decision"](wire(state), ctx)
        records.append(wire(handlers["gate_risk"](wire(state), ctx)))
    return records


def batch(handler: Any, cycle_id: str, assets: list[str]) -> list[dict[str, Any]]:
    event = {
        "Items": [{"asset": a, "item": i, "asset_class": "crypto"} for i, a in enumerate(assets)],
        "BatchInput": {"cycle_id": cycle_id, "as_of": AS_OF, "timeframe": "1h", "execution_id": EXECUTION + cycle_id},
    }
    records: list[dict[str, Any]] = wire(handler(wire(event), Context()))["records"]
    return records


def release(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE order_reservations SET status = 'RELEASED' WHERE status = 'RESERVED'")


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    with redirect_stdout(io.StringIO()):  # the metrics' EMF lines (both sides print the same ones)
        start = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - start, out


def main() -> None:
    bundled = replay.datasets()
    for i, asset in enumerate(ASSETS):
        universe.ASSET_CLASSES[asset] = AssetClass.CRYPTO
        bundled[asset] = replace(bundled[("BTCUSD", "ETHUSD")[i % 2]], symbol=asset)
    from gpu_inference.predictor import Predictor
    from gpu_inference.serve import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg").start()
        predictor = Predictor.load("bundled", device="cpu")
        specialize(predictor)
        endpoint, stop = serve_in_thread(predictor)
        try:
            with psycopg.connect(server.url, autocommit=True) as conn:
                migrate(conn)
            os.environ.update(
                {
                    "STAGE": "bench",
                    "DATABASE_URL": server.url,
                    "MARKET_DATA_PROVIDER": "replay",
                    "EXECUTION_MODE": "paper",
                    "MODEL_STORE": "bundled",
                    "INFERENCE_ENDPOINT": "ffe-bench-inference",
                    "INFERENCE_ENDPOINT_URL": endpoint.url,
                    "INFERENCE_LLM": "false",
                }
            )
            containers.reset()
            run(server.url)
        finally:
            stop()
            containers.reset()
            server.stop()


class _Instance:
    """What the policy's rollout reads of an instance: a neutral regime path."""

    def __init__(self, rows: int, features: int, regimes: int) -> None:
        self.path_features = [[0.0] * features for _ in range(rows)]
        self.path_posteriors = [[1.0 / regimes] * regimes for _ in range(rows)]


def specialize(predictor: Any) -> None:
    """Warm the endpoint's policy at each batch size the bench sends; print what the first calls of each cost."""
    policy = predictor.policies.get(predictor.version)
    print(f"the endpoint's rollout, first {SPECIALIZE} calls of each batch size (TorchScript specializing):")
    for n in sorted({1, *SIZES}):
        batch_ = [_Instance(policy.roll_bars, policy.n_features, policy.n_regimes) for _ in range(n)]
        took = []
        for _ in range(SPECIALIZE):
            start = time.perf_counter()
            policy.rollout(batch_)
            took.append(time.perf_counter() - start)
        print(
            f"  {n:>2} instances: {sum(took) * 1000:7.1f} ms in all, slowest {max(took) * 1000:6.1f} ms, "
            f"median {statistics.median(took) * 1000:5.2f} ms"
        )


def run(database_url: str) -> None:
    handlers = {name: load(name) for name in PER_ASSET}
    decide_batch = load("decide_batch")
    print(
        f"seconds per asset, N assets of one 1h cycle (bundled BTCUSD/ETHUSD bars), median of {REPEATS} repeats "
        "in turns;"
        "\nreal handlers in process, embedded PostgreSQL, the endpoint server on loopback (CPU, LLM off)"
    )
    print(f"{'N':>3}  {'DecideBatch':>12}  {'5 functions per asset':>22}  {'ratio':>6}  decided (batch / per asset)")
    cycle = 0
    for n in SIZES:
        assets = ASSETS[:n]
        ours: list[float] = []
        reference: list[float] = []
        outcome = ""
        for repeat in range(WARMUPS + REPEATS):
            cycle += 1
            took, records = timed(batch, decide_batch, f"bench-b-{cycle}", assets)
            release(database_url)
            cycle += 1
            ref_took, ref_records = timed(per_asset, handlers, f"bench-p-{cycle}", assets)
            release(database_url)
            if repeat >= WARMUPS:
                ours.append(took / n)
                reference.append(ref_took / n)
            outcome = f"{summary(records)} / {summary(ref_records)}"
        b, p = statistics.median(ours), statistics.median(reference)
        print(f"{n:>3}  {b * 1000:9.1f} ms  {p * 1000:19.1f} ms  {b / p:5.2f}x  {outcome}")
    if "--profile" in sys.argv:
        profile(decide_batch, database_url)


def summary(records: list[dict[str, Any]]) -> str:
    stale = sum(1 for r in records if r.get("stale"))
    failed = sum(1 for r in records if r.get("kind") == "failure")
    sized = sum(1 for r in records if r.get("size"))
    return f"{len(records)} ({sized} sized, {stale} stale, {failed} failed)"


def profile(decide_batch: Any, database_url: str) -> None:
    profiler = cProfile.Profile()
    with redirect_stdout(io.StringIO()):
        for i in range(REPEATS):
            profiler.enable()
            batch(decide_batch, f"bench-profile-{i}", ASSETS)
            profiler.disable()
            release(database_url)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"ffe/|functions/", 25)
    stats.sort_stats("tottime").print_stats(15)
    print(f"\nprofile: DecideBatch, {len(ASSETS)} assets x {REPEATS}: ffe's by cumulative time, then all by own time")
    print(out.getvalue())


if __name__ == "__main__":
    main()
