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
