"""The champion bundle loader: folder and S3 (moto), validation of corrupt artifacts, the TTL cache."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from ffe.adapters.models import BundleCache, ModelUnavailableError, load_bundle
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


def test_cache_rereads_after_max_age_and_remembers_failures(tmp_path: Path) -> None:
    now = [0.0]
    cache = BundleCache(clock=lambda: now[0])
    folder = tmp_path / "champion"
    with pytest.raises(ModelUnavailableError):
        cache.get(str(folder), max_age=300)
    write_bundle(BUNDLE, folder)
    now[0] = 299.0
    with pytest.raises(ModelUnavailableError):  # the failure is cached too: a broken bucket is not hammered
        cache.get(str(folder), max_age=300)
    now[0] = 300.0
    assert cache.get(str(folder), max_age=300).version == "v0007"
    write_bundle(random_bundle(seed=6, version="v0008"), folder)  # a promotion
    assert cache.get(str(folder), max_age=300).version == "v0007"
    now[0] = 600.0
    assert cache.get(str(folder), max_age=300).version == "v0008"


def _edit(path: Path, **change: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
