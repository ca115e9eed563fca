"""The champion shipped in the layer is a real, consistent product of ``ffe train`` on the shipped data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import numpy as np
import torch

from ffe.adapters.models import load_bundle
from ffe.backtest.engine import holdout_start
from ffe.domain.meta import step
from ffe.training.data import asset_class_symbols, holdout, load_series
from ffe.training.export import bundle_version
from ffe.training.meta_network import load_torch

MODELS = resources.files("ffe.data.models")


def test_shipped_champion_loads_and_its_version_is_the_digest_of_its_parameters() -> None:
    bundle = load_bundle("bundled")
    assert set(bundle.regimes) == set(asset_class_symbols())
    assert bundle.version == bundle_version(bundle.meta, bundle.regimes)  # nobody edited a number by hand


def test_shipped_champion_was_trained_on_the_shipped_data_before_the_holdout() -> None:
    manifest = json.loads(MODELS.joinpath("manifest.json").read_text())
    for symbol, sha in manifest["data_sha256"].items():
        series = load_series(symbol)
        assert series.sha256 == sha, f"{symbol} changed since the champion was trained: retrain it"
        train, _ = holdout(len(series))
        assert manifest["trained_on"][symbol]["last_bar"] == f"{series.times[train.stop - 1]}Z"


def test_backtest_holdout_starts_on_the_bar_after_training_stops() -> None:
    for symbols in asset_class_symbols().values():
        for symbol in symbols:
            series = load_series(symbol)
            _train, test = holdout(len(series))
            first = series.times[test.start].astype("datetime64[s]").astype(int)
            assert holdout_start(series.times) == datetime.fromtimestamp(int(first), UTC)


def test_torchscript_policy_computes_the_numpy_policy() -> None:
    bundle = load_bundle("bundled")
    with resources.as_file(MODELS.joinpath("meta-controller.pt")) as path:
        module = load_torch(path)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 3))
    posteriors = rng.dirichlet(np.ones(bundle.meta.n_regimes), 5)
    current = rng.dirichlet(np.ones(4), 5)
    as_torch = [torch.tensor(a, dtype=torch.float32) for a in (features, posteriors, current)]
    ours = module(*as_torch).detach().double().numpy()
    np.testing.assert_allclose(ours, step(bundle.meta, features, posteriors, current), atol=1e-5)
