"""`ffe models publish`: a version into the stage's model store (models/<version>/) and the endpoint's tarball."""

from __future__ import annotations

import json
import shutil
import tarfile
from importlib import resources
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ffe.adapters.models import load_bundle
from ffe.cli import main
from gpu_inference.predictor import Predictor

BUCKET = "ffe-dev-models-123456789012"
VERSION = json.loads(resources.files("ffe.data.models").joinpath("manifest.json").read_text())["version"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state dir whose local store holds the shipped bundle (what `ffe train` or `ffe models promote` leave)."""
    state = tmp_path / "state"
    shutil.copytree(
        Path(str(resources.files("ffe.data.models"))),
        state / "models" / VERSION,
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.md"),
    )
    return state


def test_publish_writes_the_version_to_the_store_and_a_versioned_endpoint_tarball(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # and the state dir has no local cluster
    version = VERSION
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        # When the version is published to the dev stage's bucket
        code = main(
            [
                "--state-dir",
                str(state),
                "models",
                "publish",
                "--stage",
                "dev",
                "--bucket",
                BUCKET,
                "--region",
                "us-east-1",
                "--version",
                version,
            ]
        )
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
        published = load_bundle(f"s3://{BUCKET}/models/{version}").version  # what a reader finds there
        s3.download_file(BUCKET, f"endpoint/{version}/model.tar.gz", str(tmp_path / "model.tar.gz"))
    out = capsys.readouterr().out
    # Then the store's files (what DetectRegime, CheckStaleness and the endpoint read) and the endpoint's tarball
    # are both there under the version, and nothing else: no champion/ any more
    assert code == 0
    files = sorted(p.name for p in (state / "models" / version).iterdir())
    assert keys == {f"models/{version}/{name}" for name in files} | {f"endpoint/{version}/model.tar.gz"}
    assert published == version
    assert "no redeploy is needed" in out and "PUT /models/champion" in out and "decisions hold" not in out
    # No MLflow to find the version's evidence in: published without it, saying so (the API's gate will refuse it)
    assert "no walk-forward evidence: no MLflow to ask" in out
    # And the tarball is SageMaker's layout (files at the root) that the endpoint's predictor loads
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == files
        tar.extractall(tmp_path / "opt-ml-model", filter="data")
    assert Predictor.load(tmp_path / "opt-ml-model", device="cpu").version == version


def test_publish_without_a_champion_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--state-dir", str(tmp_path / "empty"), "models", "publish", "--stage", "dev", "--bucket", BUCKET]) == 1
    )
    assert "run `ffe train`" in capsys.readouterr().out


def test_publish_of_a_version_not_in_the_local_store_names_what_is(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--state-dir", str(state), "models", "publish", "--stage", "dev", "--bucket", BUCKET]
    assert main([*argv, "--version", "ffe-00000000beef"]) == 1
    out = capsys.readouterr().out
    assert f"no bundle ffe-00000000beef in {state / 'models'}/" in out and f"holds {VERSION})" in out


def test_publish_uploads_the_registered_versions_evidence_before_the_manifest(
    state: Path, postgres: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid
    from collections.abc import Iterator
    from contextlib import contextmanager

    from ffe.adapters.models import ModelStore
    from ffe.evaluation.gate import load_evidence
    from ffe.training import cli
    from ffe.training.pipeline import BUNDLE_ARTIFACT_PATH, EXPERIMENT, MODEL_NAME
    from ffe.training.tracking import Tracker, tracking_uri
    from tests.fakes.evidence import returns, write_evidence

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Given the bundle registered as v1 of the model (its manifest names the run), with evidence attached to v1
    tracker = Tracker(
        tracking_uri(postgres, database=f"mlflow_{uuid.uuid4().hex[:12]}"),
        EXPERIMENT,
        artifact_location=(tmp_path / "art").as_uri(),
    )
    run_id = tracker.start_run("v1")
    tracker.log_artifacts(run_id, state / "models" / VERSION, BUNDLE_ARTIFACT_PATH)
    tracker.end_run(run_id)
    tracker.register_and_alias(run_id, BUNDLE_ARTIFACT_PATH, MODEL_NAME)
    manifest = state / "models" / VERSION / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"mlflow_run_id": run_id}))
    paths = {"BTCUSD": {"meta_controller": returns(2, 0.001), "naive_router": returns(1, 0.0)}}
    tracker.attach_evidence(MODEL_NAME, "1", write_evidence(tmp_path / "evidence", paths, registered_version="1"))

    @contextmanager
    def local_tracker(_: object) -> Iterator[Tracker]:
        yield tracker

    monkeypatch.setattr(cli, "local_tracker", local_tracker)
    (state / "pgdata").mkdir()  # the local cluster the tracker stands in for
    uploaded: list[str] = []
    real_client = boto3.client

    def recording_client(service: str, **kwargs: object) -> object:
        client = real_client(service, **kwargs)
        upload = client.upload_file

        def upload_file(filename: str, bucket: str, key: str) -> None:
            uploaded.append(key)
            upload(filename, bucket, key)

        client.upload_file = upload_file
        return client

    argv = ["--state-dir", str(state), "models", "publish", "--stage", "dev", "--bucket", BUCKET, "--region"]
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        monkeypatch.setattr(boto3, "client", recording_client)
        # When it is published
        code = main([*argv, "us-east-1", "--version", VERSION])
        monkeypatch.setattr(boto3, "client", real_client)
        got = ModelStore(f"s3://{BUCKET}/models").evidence(VERSION, tmp_path / "read-back")
    out = capsys.readouterr().out
    # Then the evidence lies beside the version, uploaded before the manifest, and the gate reads it back
    assert code == 0, out
    evidence = [f"models/{VERSION}/evidence/evaluation.json", f"models/{VERSION}/evidence/paths.npz"]
    assert set(evidence) <= set(uploaded) and uploaded[-1] == f"models/{VERSION}/manifest.json"
    assert got is not None and set(load_evidence(got).series) == {"BTCUSD"}
    assert f"with the walk-forward evidence of v1 (models/{VERSION}/evidence/)" in out
