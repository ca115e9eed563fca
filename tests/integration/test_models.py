"""The bundle loader and the store by version: folder, bundled and S3 (moto), validation, the caches."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from ffe.adapters import models
from ffe.adapters.models import (
    ModelBundle,
    ModelStore,
    ModelUnavailableError,
    bundled_version,
    load_bundle,
)
from ffe.domain.regime import posterior
from tests.fakes.models import random_bundle, write_bundle

BUNDLE = random_bundle(seed=5, version="v0007")


def test_folder_bundle_round_trips_every_artifact(tmp_path: Path) -> None:
    loaded = load_bundle(str(write_bundle(BUNDLE, tmp_path / "champion")))
    assert loaded.version == "v0007" and set(loaded.regimes) == {"crypto", "fx", "equity"}
    x = np.array([[0.3, -0.1, 0.4], [-2.0, 0.5, 0.9]])
    np.testing.assert_array_equal(posterior(loaded.regimes["fx"], x), posterior(BUNDLE.regimes["fx"], x))
    assert loaded.meta.to_dict() == BUNDLE.meta.to_dict()


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: (d / "manifest.json").unlink(), "has no readable manifest.json"),
        (lambda d: (d / "meta.json").write_text("{not json"), "is unusable"),
        (lambda d: _edit(d / "meta.json", smoothing=1.5), "smoothing must be in"),
        (lambda d: _edit(d / "meta.json", format="ffe.meta/99"), "expected 'ffe.meta/1'"),
        (lambda d: _edit(d / "regime_fx.json", means=[[float("nan")] * 3] * 6), "non-finite"),
        (lambda d: _edit(d / "regime_fx.json", log_weights=[0.0] * 5), "log_weights has shape"),
        (lambda d: _edit(d / "manifest.json", format="zip"), "manifest format"),
    ],
    ids=["no-manifest", "truncated", "bad-smoothing", "wrong-format", "nan-means", "wrong-shape", "bad-manifest"],
)
def test_corrupt_bundle_is_unavailable_with_the_reason(tmp_path: Path, corrupt, message) -> None:
    folder = write_bundle(BUNDLE, tmp_path / "champion")
    corrupt(folder)
    with pytest.raises(ModelUnavailableError, match=message):
        load_bundle(str(folder))


def test_regime_models_must_fit_the_meta_controller(tmp_path: Path) -> None:
    folder = write_bundle(BUNDLE, tmp_path / "champion")
    raw = json.loads((folder / "regime_equity.json").read_text())
    raw.update(
        labels=raw["labels"][:5],
        means=raw["means"][:5],
        precisions_cholesky=raw["precisions_cholesky"][:5],
        log_weights=raw["log_weights"][:5],
        log_prob_offset=raw["log_prob_offset"][:5],
    )
    (folder / "regime_equity.json").write_text(json.dumps(raw))
    with pytest.raises(ModelUnavailableError, match="the equity regime model has 5 regimes"):
        load_bundle(str(folder))


@mock_aws
def test_s3_bundle_and_a_missing_prefix(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="ffe-dev-models-123")
    for f in write_bundle(BUNDLE, tmp_path / "champion").iterdir():
        s3.put_object(Bucket="ffe-dev-models-123", Key=f"champion/{f.name}", Body=f.read_bytes())
    assert load_bundle("s3://ffe-dev-models-123/champion").version == "v0007"
    with pytest.raises(ModelUnavailableError, match=r"cannot read nothing-here/manifest\.json"):
        load_bundle("s3://ffe-dev-models-123/nothing-here")


def _edit(path: Path, **change: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


# --- the store: bundles by version ------------------------------------------------------------------------------

V1 = random_bundle(seed=5, version="ffe-000000000001")
V2 = random_bundle(seed=6, version="ffe-000000000002")


def test_store_folder_serves_each_version_and_the_bundled_one_whatever_the_root(tmp_path: Path) -> None:
    # Given a folder store holding two versions
    write_bundle(V1, tmp_path / "models" / V1.version)
    write_bundle(V2, tmp_path / "models" / V2.version)
    store = ModelStore(str(tmp_path / "models"))
    # Then each resolves by version, and the layer's version resolves from the package
    assert store.bundle(V1.version).version == V1.version
    assert store.bundle(V2.version).meta.to_dict() == V2.meta.to_dict()
    assert store.bundle(bundled_version()).source == "bundled"
    assert store.versions() == sorted({V1.version, V2.version, bundled_version()})
    assert store.exists(V2.version) and store.exists(bundled_version())
    assert not store.exists("ffe-00000000000f") and not store.exists("../etc")
    with pytest.raises(ModelUnavailableError, match=r"model ffe-00000000000f is not in .*: publish it"):
        store.bundle("ffe-00000000000f")


def test_store_refuses_a_folder_whose_manifest_names_another_version(tmp_path: Path) -> None:
    write_bundle(V1, tmp_path / V2.version)  # V1's bundle filed under V2's name
    with pytest.raises(ModelUnavailableError, match=f"is version {V1.version}, not {V2.version}"):
        ModelStore(str(tmp_path)).bundle(V2.version)


def test_store_rejects_a_name_that_is_not_a_version(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="is not a model version"):
        ModelStore(str(tmp_path)).bundle("../../secrets")


def test_bundled_store_has_only_the_layer_version() -> None:
    store = ModelStore("bundled")
    assert store.versions() == [bundled_version()]
    assert store.bundle(bundled_version()).version == bundled_version()
    with pytest.raises(ModelUnavailableError, match="set MODEL_STORE to the model bucket"):
        store.bundle(V1.version)


def test_store_keeps_loaded_versions_and_failures_only_briefly(tmp_path: Path, monkeypatch) -> None:
    now = [0.0]
    store = ModelStore(str(tmp_path), capacity=1, failure_seconds=60, clock=lambda: now[0])
    loads: list[str] = []
    real = models.load_bundle

    def counting(uri: str) -> ModelBundle:
        loads.append(uri)
        return real(uri)

    monkeypatch.setattr(models, "load_bundle", counting)
    # A missing version fails, and the failure is kept: the storage is not asked again within a minute
    with pytest.raises(ModelUnavailableError):
        store.bundle(V1.version)
    write_bundle(V1, tmp_path / V1.version)  # published meanwhile
    now[0] = 59.0
    with pytest.raises(ModelUnavailableError):
        store.bundle(V1.version)
    now[0] = 60.0
    first = store.bundle(V1.version)
    assert store.bundle(V1.version) is first and len(loads) == 1  # versions are immutable: no expiry
    write_bundle(V2, tmp_path / V2.version)
    store.bundle(V2.version)  # capacity 1: V1 is evicted
    assert store.bundle(V1.version) is not first and len(loads) == 3


@mock_aws
def test_store_over_s3(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="ffe-dev-models-123")
    for f in write_bundle(V1, tmp_path / V1.version).iterdir():
        s3.put_object(Bucket="ffe-dev-models-123", Key=f"models/{V1.version}/{f.name}", Body=f.read_bytes())
    s3.put_object(Bucket="ffe-dev-models-123", Key="models/half-written/meta.json", Body=b"{}")  # no manifest yet
    store = ModelStore("s3://ffe-dev-models-123/models")
    assert store.bundle(V1.version).version == V1.version
    assert store.versions() == sorted({V1.version, bundled_version()})
    assert store.exists(V1.version) and not store.exists("half-written")
    with pytest.raises(ModelUnavailableError, match=r"model ffe-000000000002 is not in s3://ffe-dev-models-123/models"):
        store.bundle(V2.version)


@mock_aws
def test_the_endpoint_loads_a_version_from_the_s3_store(tmp_path: Path) -> None:
    import shutil
    from importlib import resources

    from gpu_inference.predictor import ModelLoadError, PolicyStore

    # Given the shipped TorchScript policy published under another version in the bucket's store
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="ffe-dev-models-123")
    folder = tmp_path / "ffe-0000000000b2"
    shutil.copytree(Path(str(resources.files("ffe.data.models"))), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": "ffe-0000000000b2"}))
    for name in ("manifest.json", "meta-controller.pt"):
        s3.upload_file(str(folder / name), "ffe-dev-models-123", f"models/ffe-0000000000b2/{name}")
    import torch

    policies = PolicyStore("s3://ffe-dev-models-123/models", torch.device("cpu"))
    # Then the endpoint downloads and serves it, and a version not published there is refused with the reason
    assert policies.get("ffe-0000000000b2").version == "ffe-0000000000b2"
    with pytest.raises(
        ModelLoadError, match=r"model ffe-0000000000b3 is not readable in s3://ffe-dev-models-123/models"
    ):
        policies.get("ffe-0000000000b3")


@mock_aws
def test_evidence_is_read_from_beside_the_version_over_s3_a_folder_and_never_bundled(tmp_path: Path) -> None:
    # Given a version published with its evidence in a bucket, and the same in a folder store
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="ffe-dev-models-123")
    folder_root = tmp_path / "models"
    for name, body in (("evaluation.json", b'{"schema": "x"}'), ("paths.npz", b"npz bytes")):
        s3.put_object(Bucket="ffe-dev-models-123", Key=f"models/{V1.version}/evidence/{name}", Body=body)
        (folder_root / V1.version / "evidence").mkdir(parents=True, exist_ok=True)
        (folder_root / V1.version / "evidence" / name).write_bytes(body)
    for root in ("s3://ffe-dev-models-123/models", str(folder_root)):
        store = ModelStore(root)
        # Then both files come back into the destination, byte for byte
        got = store.evidence(V1.version, tmp_path / "dst" / root.replace("/", "_"))
        assert got is not None and sorted(p.name for p in got.iterdir()) == ["evaluation.json", "paths.npz"]
        assert (got / "paths.npz").read_bytes() == b"npz bytes"
        # And a version without evidence (or not a version name) has none
        assert store.evidence(V2.version, tmp_path / "none") is None and not (tmp_path / "none").exists()
        assert store.evidence("../etc", tmp_path / "none") is None
    assert ModelStore().evidence(bundled_version(), tmp_path / "none") is None  # the layer ships no evidence


def test_evidence_over_an_s3_that_fails_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from ffe.domain.errors import TransientError

    class Failing:
        def get_object(self, **_: object) -> None:
            raise ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")

    monkeypatch.setattr(boto3, "client", lambda *_a, **_k: Failing())
    with pytest.raises(TransientError, match="S3 error reading s3://b/models/ffe-000000000001/evidence/"):
        ModelStore("s3://b/models").evidence(V1.version, tmp_path)
