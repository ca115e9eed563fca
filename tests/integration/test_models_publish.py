"""`ffe models publish`: the champion for DetectRegime and the same bundle as the endpoint's model.tar.gz."""

from __future__ import annotations

import json
import shutil
import tarfile
from importlib import resources
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ffe.cli import main
from gpu_inference.predictor import Predictor

BUCKET = "ffe-dev-models-123456789012"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state dir whose champion is the shipped bundle (what `ffe train` or `ffe models promote` leave)."""
    state = tmp_path / "state"
    shutil.copytree(
        Path(str(resources.files("ffe.data.models"))),
        state / "champion",
        ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.md"),
    )
    return state


def test_publish_writes_the_champion_and_a_versioned_endpoint_tarball(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    version = json.loads((state / "champion" / "manifest.json").read_text())["version"]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        # When the champion is published to the dev stage's bucket
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
            ]
        )
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
        s3.download_file(BUCKET, f"endpoint/{version}/model.tar.gz", str(tmp_path / "model.tar.gz"))
    out = capsys.readouterr().out
    # Then DetectRegime's files and the endpoint's tarball are both there, the tarball under the version
    assert code == 0
    files = sorted(p.name for p in (state / "champion").iterdir())
    assert keys == {f"champion/{name}" for name in files} | {f"endpoint/{version}/model.tar.gz"}
    assert f"InferenceModelDataUrl=s3://{BUCKET}/endpoint/{version}/model.tar.gz" in out
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
