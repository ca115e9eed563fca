"""What a shadow experiment costs a decision: the decision path (DetectRegime + InferDecision through the real
endpoint server on loopback, as the cycle calls it) with the champion alone beside the same path with a shadow
treatment, measured interleaved in one run; and the bytes a decision row takes with and without the experiment's
arms, in the same embedded PostgreSQL. Prints figures; asserts nothing.

Issue 15's budget for the shadow (the previous system's): +10-20 ms per decision.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("OLLAMA_HOST", "127.0.0.1:9")  # no LLM: the RL voter's path, as with INFERENCE_LLM=false
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the sagemaker-runtime client goes to loopback
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import psycopg

from ffe.adapters.inference import get_inference
from ffe.adapters.models import ModelStore, bundled_version
from ffe.adapters.replay import ReplayProvider
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import AssetTask, DecideInput, DetectRegimeInput
from ffe.domain.features import FeatureParams
from ffe.domain.models import Timeframe
from ffe.domain.strategies import StrategyParams
from ffe.local.inference import LocalInference
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.runner import DEFAULT_AS_OF
from ffe.settings import InferenceSettings
from ffe.steps.fetch import fetch_market_data
from ffe.steps.infer import infer_decision
from ffe.steps.regime import detect_regimes
from ffe.steps.staleness import check_staleness
from ffe.store.migrate import migrate
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.pipeline import TrainPlan, train

ROOT = Path(__file__).resolve().parent.parent
N = 300
CHAMPION = bundled_version()


def challenger(store: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        outcome = train(TrainPlan(seed=11, meta=MetaTrainConfig.quick(seed=11), progress=False), Path(tmp) / "b")
        shutil.copytree(outcome.bundle_dir, store / outcome.version)
    return outcome.version


def market(models: dict[str, object]) -> dict[str, object]:
    task = AssetTask(cycle_id="bench", as_of=DEFAULT_AS_OF, timeframe=Timeframe.H1, asset="BTCUSD", models=models)
    data = fetch_market_data(task, ReplayProvider(), 120)
    staleness = check_staleness(data, clock=lambda: DEFAULT_AS_OF, params=StrategyParams())
    return {**data.model_dump(mode="json"), "staleness": staleness.model_dump(mode="json")}


def p(samples: list[float], q: float) -> float:
    return sorted(samples)[int(len(samples) * q)] * 1000


with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp) / "models"
    folder.mkdir()
    treatment = challenger(folder)
    models_store = ModelStore(str(folder))
    server = LocalInference(ROOT, store=folder)
    url = server.start()
    client = get_inference(InferenceSettings(inference_endpoint_url=url, inference_llm=False))
    shadow = {"id": "bench", "mode": "shadow", "control_version": CHAMPION, "treatment_version": treatment}
    inputs = {
        "champion alone": market({"champion": CHAMPION}),
        "with a shadow treatment": market({"champion": CHAMPION, "experiments": [{**shadow, "share": 0.0}]}),
    }

    def path(payload: dict[str, object]) -> object:
        regime = detect_regimes(DetectRegimeInput.model_validate(payload), models_store.bundle, FeatureParams())
        decide = DecideInput.model_validate({**payload, "regime": regime.model_dump(mode="json")})
        return infer_decision(decide, client, StrategyParams(), 0.15, llm=False)

    samples: dict[str, list[float]] = {label: [] for label in inputs}
    rows = {}
    for i in range(N + 20):  # interleaved, so drift hits both alike; the first 20 warm up
        for label, payload in inputs.items():
            t0 = time.perf_counter()
            rows[label] = path(payload)
            if i >= 20:
                samples[label].append(time.perf_counter() - t0)
    server.stop()

    alone, shadowed = samples["champion alone"], samples["with a shadow treatment"]
    print(f"decision path (DetectRegime + InferDecision over loopback, RL voter), {N} decisions each, interleaved")
    for label, s in samples.items():
        print(f"  {label:<26} p50 {p(s, 0.5):7.2f} ms   p95 {p(s, 0.95):7.2f} ms")
    delta50 = statistics.median(shadowed) * 1000 - statistics.median(alone) * 1000
    print(
        f"  shadow overhead            p50 {delta50:+7.2f} ms   p95 {p(shadowed, 0.95) - p(alone, 0.95):+7.2f} ms"
        f"   ({statistics.median(shadowed) / statistics.median(alone):.2f}x the champion alone; budget +10-20 ms)"
    )

    with EmbeddedPostgres(Path(tmp) / "pg") as pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            migrate(conn)
        store = PostgresDecisionStore(pg.url)
        for n in range(500):
            for label, record in rows.items():
                store.record_decision(record.model_copy(update={"cycle_id": f"{label[:4]}-{n}"}))  # type: ignore[attr-defined]
        with psycopg.connect(pg.url) as conn:
            columns = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'decisions'"
                ).fetchall()
            ]
            total = " + ".join(f"coalesce(pg_column_size(d.{c}), 0)" for c in columns)
            sizes = conn.execute(
                f"SELECT experiment_id IS NOT NULL, avg({total}), avg(coalesce(pg_column_size(d.arms), 0))"
                " FROM decisions d GROUP BY 1 ORDER BY 1"
            ).fetchall()
        store.close()
    (_, plain, _), (_, with_arms, arms) = sizes
    print("storage per decision row (the sum of its columns' pg_column_size, as stored)")
    print(f"  champion alone             {float(plain):7.0f} bytes")
    print(f"  with the experiment's arms {float(with_arms):7.0f} bytes   ({float(with_arms) / float(plain):.2f}x)")
    print(
        f"  the arms column alone      {float(arms):7.0f} bytes   (the whole row can come out smaller: past ~2 KB"
        " PostgreSQL compresses the row's large jsonb, the reasons, in place)"
    )
