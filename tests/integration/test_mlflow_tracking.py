"""MLflow tracking and registry on the PostgreSQL backend store: runs, registry aliases, concurrent trainers."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from mlflow.tracking import MlflowClient

from ffe.training.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    ModelNotFoundError,
    Tracker,
    ensure_tracking_schema,
    libpq_conninfo,
    sqlalchemy_url,
    tracking_uri,
)

# MLflow 3.17's registry models use SQLAlchemy's `noload`, deprecated in SQLAlchemy 2.1: MLflow's to fix
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

N_RUNS, N_STEPS, METRICS = 20, 50, ("loss", "val_loss", "sharpe", "churn", "max_disruption")


@pytest.fixture
def uri(postgres: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, un-initialized MLflow database in the session cluster, so tests never see each other's runs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tracking_uri(postgres, database=f"mlflow_{uuid.uuid4().hex[:12]}")


def test_sqlalchemy_url_keeps_the_unix_socket_and_port() -> None:
    # Given the embedded cluster's libpq URL (unix socket directory as a query parameter)
    url = sqlalchemy_url("postgresql://postgres@/ffe?host=/tmp/ffe-pg-abc&port=5432", "mlflow")
    # Then the SQLAlchemy URL uses psycopg 3, the other database, and round-trips to the same conninfo
    assert url.startswith("postgresql+psycopg://postgres@/mlflow?")
    conninfo = psycopg.conninfo.conninfo_to_dict(libpq_conninfo(url))
    assert conninfo == {"user": "postgres", "dbname": "mlflow", "host": "/tmp/ffe-pg-abc", "port": "5432"}
    tcp = sqlalchemy_url("postgresql://u:p%40ss@db.internal:6432/ffe?sslmode=require", "mlflow")
    assert tcp == "postgresql+psycopg://u:p%40ss@db.internal:6432/mlflow?sslmode=require"


def test_tracking_uri_prefers_the_environment(postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/ffe-dev"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", arn)
    assert tracking_uri(postgres) == arn
    # an Aurora URI written for libpq gets the psycopg 3 driver (there is no psycopg2 in the images)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:pw@proxy.internal:5432/mlflow?sslmode=require")
    assert tracking_uri() == "postgresql+psycopg://mlflow:pw@proxy.internal:5432/mlflow?sslmode=require"


def test_run_logs_params_metrics_hashes_and_artifacts(uri: str, tmp_path: Path) -> None:
    # Given a tracker on a fresh database and a model directory to keep
    tracker = Tracker(uri, "regime", (tmp_path / "artifacts").as_uri())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.json").write_text('{"k": 3}')
    # When a training run logs 10 epochs, its data hashes and the model
    with tracker.run("fit-dpgmm", params={"max_components": 8, "lr": 0.01}, tags={"stage": "dev"}) as run_id:
        for epoch in range(10):
            tracker.log_metrics(run_id, {"loss": 1.0 / (epoch + 1), "sharpe": 0.1 * epoch}, step=epoch)
        tracker.log_data_hashes(run_id, {"bars_eurusd_1h": "a" * 64})
        tracker.log_artifacts(run_id, model_dir, "model")
    # Then MLflow has it all, read back through a separate client
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fit-dpgmm"
    assert run.data.params == {"max_components": "8", "lr": "0.01", "data.bars_eurusd_1h.sha256": "a" * 64}
    assert run.data.tags["stage"] == "dev"
    loss = client.get_metric_history(run_id, "loss")
    assert [m.step for m in sorted(loss, key=lambda m: m.step)] == list(range(10))
    assert sorted(loss, key=lambda m: m.step)[-1].value == pytest.approx(0.1)
    assert len(client.get_metric_history(run_id, "sharpe")) == 10
    assert [a.path for a in client.list_artifacts(run_id, "model")] == ["model/weights.json"]
    local = client.download_artifacts(run_id, "model/weights.json", str(tmp_path / "back"))
    assert Path(local).read_text() == '{"k": 3}'


def test_run_whose_body_raises_ends_failed(uri: str, tmp_path: Path) -> None:
    tracker = Tracker(uri, "meta-controller", (tmp_path / "artifacts").as_uri())
    run_ids: list[str] = []
    # When the training body crashes mid-run
    with pytest.raises(RuntimeError, match="diverged"), tracker.run("ppo", params={"gamma": 0.99}) as run_id:
        run_ids.append(run_id)
        tracker.log_metrics(run_id, {"loss": float("nan")}, step=0)
        raise RuntimeError("loss diverged")
    # Then the run is FAILED, not left RUNNING
    assert MlflowClient(tracking_uri=uri).get_run(run_ids[0]).info.status == "FAILED"


def test_registry_champion_challenger_promote_and_download(uri: str, tmp_path: Path) -> None:
    tracker = Tracker(uri, "regime", (tmp_path / "artifacts").as_uri())
    versions = []
    # Given two training runs, each keeping a model, registered one after the other
    for n in (1, 2):
        model_dir = tmp_path / f"model{n}"
        model_dir.mkdir()
        (model_dir / "params.json").write_text(f'{{"version": {n}}}')
        with tracker.run(f"fit-{n}") as run_id:
            tracker.log_artifacts(run_id, model_dir, "model")
        versions.append(tracker.register_and_alias(run_id, "model", "regime-dpgmm"))
    # Then the first is champion and the second challenger
    assert versions == [("1", CHAMPION), ("2", CHALLENGER)]
    assert tracker.version_for_alias("regime-dpgmm", CHAMPION) == "1"
    assert tracker.version_for_alias("regime-dpgmm", CHALLENGER) == "2"
    assert tracker.version_for_alias("regime-dpgmm", PREVIOUS_CHAMPION) is None
    assert tracker.version_for_alias("no-such-model", CHAMPION) is None
    champion = tracker.download("regime-dpgmm", CHAMPION, tmp_path / "dl-champion")
    assert (champion / "params.json").read_text() == '{"version": 1}'
    # When the challenger is promoted
    tracker.promote("regime-dpgmm", "2")
    # Then champion moved, the old champion is the rollback target, and no challenger is left
    assert tracker.version_for_alias("regime-dpgmm", CHAMPION) == "2"
    assert tracker.version_for_alias("regime-dpgmm", PREVIOUS_CHAMPION) == "1"
    assert tracker.version_for_alias("regime-dpgmm", CHALLENGER) is None
    promoted = tracker.download("regime-dpgmm", CHAMPION, tmp_path / "dl-promoted")
    assert (promoted / "params.json").read_text() == '{"version": 2}'
    with pytest.raises(ModelNotFoundError):
        tracker.download("regime-dpgmm", CHALLENGER, tmp_path / "dl-none")


def test_twenty_concurrent_runs_from_a_fresh_database(uri: str, tmp_path: Path) -> None:
    # Given 20 trainers, each with its own Tracker (own MlflowClient), released together on a database
    # whose MLflow schema does not exist yet: the schema initialization itself is raced
    artifacts = (tmp_path / "artifacts").as_uri()
    barrier = threading.Barrier(N_RUNS)
    run_ids: dict[int, str] = {}
    errors: list[BaseException] = []
    batch_seconds: list[float] = []
    logging_window: list[float] = []

    def train(i: int) -> None:
        try:
            barrier.wait()
            tracker = Tracker(uri, "concurrency", artifacts)
            with tracker.run(f"trainer-{i}", params={"seed": i, "lr": 0.001 * (i + 1)}) as run_id:
                run_ids[i] = run_id
                tracker.log_data_hashes(run_id, {"bars": f"{i:064x}"})
                logging_window.append(time.perf_counter())
                for step in range(N_STEPS):
                    t0 = time.perf_counter()
                    tracker.log_metrics(run_id, {m: i + k + step / N_STEPS for k, m in enumerate(METRICS)}, step=step)
                    batch_seconds.append(time.perf_counter() - t0)
                logging_window.append(time.perf_counter())
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=train, args=(i,)) for i in range(N_RUNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]

    # Then every run exists, FINISHED, with its full metric history
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("concurrency")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert len(runs) == N_RUNS
    assert {r.info.run_id for r in runs} == set(run_ids.values())
    assert {r.info.status for r in runs} == {"FINISHED"}
    for i, run_id in run_ids.items():
        run = client.get_run(run_id)
        assert run.data.params["seed"] == str(i)
        assert run.data.params["data.bars.sha256"] == f"{i:064x}"
        for k, metric in enumerate(METRICS):
            history = sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
            assert [m.step for m in history] == list(range(N_STEPS))
            assert history[-1].value == pytest.approx(i + k + (N_STEPS - 1) / N_STEPS)
    # and the schema was initialized once: one default experiment, alembic at a single head
    with psycopg.connect(libpq_conninfo(uri)) as conn:
        assert conn.execute("SELECT count(*) FROM experiments WHERE experiment_id = 0").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)

    total = N_RUNS * N_STEPS * len(METRICS)
    logging_s = max(logging_window) - min(logging_window)
    print(
        f"\n{N_RUNS} concurrent runs on PostgreSQL: {total} metrics in {logging_s:.2f} s of logging "
        f"= {total / logging_s:.0f} metrics/s ({wall:.2f} s wall incl. schema init); "
        f"log_batch p50 {statistics.median(batch_seconds) * 1000:.1f} ms"
    )


def test_ensure_tracking_schema_ignores_tracking_servers() -> None:
    # A SageMaker managed server owns its schema: nothing to connect to, nothing to do
    ensure_tracking_schema("arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/ffe-dev")
    ensure_tracking_schema("https://mlflow.example.internal")
