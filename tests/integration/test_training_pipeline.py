"""``ffe train``'s pipeline end to end on real bundled series: regime fits, the meta-controller, the EWC
update, MLflow on Postgres (params, per-epoch metrics, data hashes, artifacts, registry aliases), and a
bundle the Lambdas load. Quick configs: a smoke of the real pipeline, not a model anyone trades."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ffe.adapters.models import load_bundle
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, EXPERIMENT, MODEL_NAME, TrainPlan, train
from ffe.training.tracking import CHALLENGER, CHAMPION, Tracker, tracking_uri

PLAN = TrainPlan(
    seed=11, symbols=("BTCUSD", "EURUSD"), meta=MetaTrainConfig.quick(seed=11), ewc_epochs=2, progress=False
)


@pytest.fixture
def tracker(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tracker:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri(postgres, database=f"mlflow_{uuid.uuid4().hex[:12]}")
    return Tracker(uri, EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())


def test_training_is_tracked_registered_and_loadable(tracker: Tracker, tmp_path: Path) -> None:
    outcome = train(PLAN, tmp_path / "bundle", tracker)
    # The bundle is what the Lambdas load, and names its version everywhere
    bundle = load_bundle(str(outcome.bundle_dir))
    assert bundle.version == outcome.version and set(bundle.regimes) == {"crypto", "fx"}
    assert bundle.meta.version == outcome.version and (outcome.bundle_dir / "meta-controller.pt").exists()
    manifest = json.loads((outcome.bundle_dir / "manifest.json").read_text())
    assert manifest["data_sha256"] == outcome.data and manifest["mlflow_run_id"] == outcome.run_id
    # MLflow has the run: params, data hashes, one metric step per epoch, the EWC and holdout figures
    client = MlflowClient(tracking_uri=tracker.uri)
    run = client.get_run(str(outcome.run_id))
    assert run.info.status == "FINISHED" and run.data.tags["ffe.bundle_version"] == outcome.version
    assert run.data.params["meta.seed"] == "11" and run.data.params["data.BTCUSD.sha256"] == outcome.data["BTCUSD"]
    # What reproducing it takes (ffe.training.provenance): the same record as the bundle's manifest
    assert run.data.tags["ffe.code_version"] == manifest["code_version"]
    assert json.loads(run.data.tags["ffe.training_config"]) == manifest["training_config"]
    assert run.data.tags["ffe.library.torch"] == manifest["libraries"]["torch"]
    history = client.get_metric_history(run.info.run_id, "train.train_return")
    assert [m.step for m in history] == list(range(PLAN.meta.epochs))
    assert np.isfinite(run.data.metrics["ewc.degradation_pct"])
    assert "holdout.EURUSD.meta_controller.sharpe" in run.data.metrics
    # The first version is the champion, its artifacts download to the same bundle
    assert (outcome.registered_version, outcome.alias) == ("1", CHAMPION)
    got = tracker.download(MODEL_NAME, CHAMPION, tmp_path / "download")
    assert load_bundle(str(got)).version == outcome.version
    assert got.name == BUNDLE_ARTIFACT_PATH


def test_same_seed_same_model_and_a_second_run_is_the_challenger(tracker: Tracker, tmp_path: Path) -> None:
    first = train(PLAN, tmp_path / "a", tracker)
    second = train(PLAN, tmp_path / "b", tracker)
    # Seeded end to end: identical parameters, hence the identical bundle version and identical figures
    assert second.version == first.version
    assert second.holdout == first.holdout and second.ewc == first.ewc
    assert (second.registered_version, second.alias) == ("2", CHALLENGER)
    tracker.promote(MODEL_NAME, "2")
    assert tracker.version_for_alias(MODEL_NAME, CHAMPION) == "2"
    assert tracker.version_for_alias(MODEL_NAME, "previous_champion") == "1"


def test_a_failing_training_run_ends_failed(tracker: Tracker, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no bundled real series for 'XAUUSD'"):
        train(TrainPlan(symbols=("XAUUSD",), meta=MetaTrainConfig.quick(), progress=False), tmp_path / "x", tracker)
    runs = MlflowClient(tracking_uri=tracker.uri).search_runs([tracker.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
