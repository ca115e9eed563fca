"""Small seeded model bundles (regime mixtures + meta-controller) for tests that need a champion.

The parameters are random but shaped like a real export (``ffe train``): K=6 regimes over the three market
features, a policy with one tanh hidden layer of 16 over (features, posterior, current weights) -> 4 options,
smoothing 0.2, rolled over 24 bars. They validate through the same ``from_dict`` as a real artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ffe.adapters.models import BUNDLE_FORMAT, MANIFEST, ModelBundle
from ffe.domain.features import FEATURE_NAMES
from ffe.domain.meta import OPTIONS, MetaPolicy
from ffe.domain.regime import RegimeModel, regime_label

N_REGIMES = 6
HIDDEN = 16
SMOOTHING = 0.2
ROLL_BARS = 24
ASSET_CLASSES: tuple[str, ...] = ("crypto", "fx", "equity")

# Roughly where the raw features live (momentum in noise units, log vol ratio, efficiency ratio in [0, 1]).
_FEATURE_MEAN = np.array([0.0, -0.05, 0.3])
_FEATURE_SCALE = np.array([1.5, 0.3, 0.15])


def random_regime_model(asset_class: str, version: str = "test-0001", seed: int = 0) -> RegimeModel:
    """A K=6 mixture with positive-definite precisions (upper-triangular Cholesky factors, positive diagonal)."""
    rng = np.random.default_rng(seed)
    k, f = N_REGIMES, len(FEATURE_NAMES)
    means = rng.normal(0.0, 1.0, (k, f))
    chol = np.triu(rng.normal(0.0, 0.2, (k, f, f)), 1)
    idx = np.arange(f)
    chol[:, idx, idx] = np.exp(rng.normal(0.0, 0.2, (k, f)))
    weights = rng.dirichlet(np.full(k, 2.0))
    raw_means = means * _FEATURE_SCALE + _FEATURE_MEAN
    labels = tuple(
        f"r{i} {regime_label(dict(zip(FEATURE_NAMES, row.tolist(), strict=True)))}" for i, row in enumerate(raw_means)
    )
    model = RegimeModel(
        asset_class=asset_class,
        version=version,
        feature_names=FEATURE_NAMES,
        scaler_mean=_FEATURE_MEAN.copy(),
        scaler_scale=_FEATURE_SCALE.copy(),
        means=means,
        precisions_cholesky=chol,
        log_weights=np.log(weights),
        log_prob_offset=rng.normal(0.0, 0.1, k),
        labels=labels,
    )
    return RegimeModel.from_dict(model.to_dict())  # validated like a shipped artifact


def random_meta_policy(version: str = "test-0001", seed: int = 0) -> MetaPolicy:
    """A one-hidden-layer tanh policy over (standardized features, posterior, current weights)."""
    rng = np.random.default_rng(seed + 10_000)
    width = len(FEATURE_NAMES) + N_REGIMES + len(OPTIONS)
    policy = MetaPolicy(
        version=version,
        feature_names=FEATURE_NAMES,
        n_regimes=N_REGIMES,
        input_mean=_FEATURE_MEAN.copy(),
        input_scale=_FEATURE_SCALE.copy(),
        layers=(
            (rng.normal(0.0, 0.6, (width, HIDDEN)), rng.normal(0.0, 0.1, HIDDEN)),
            (rng.normal(0.0, 0.8, (HIDDEN, len(OPTIONS))), rng.normal(0.0, 0.1, len(OPTIONS))),
        ),
        smoothing=SMOOTHING,
        roll_bars=ROLL_BARS,
    )
    return MetaPolicy.from_dict(policy.to_dict())


def random_bundle(
    seed: int = 0, version: str = "test-0001", asset_classes: tuple[str, ...] = ASSET_CLASSES
) -> ModelBundle:
    """A usable champion: one regime model per asset class and the meta-controller, all seeded."""
    regimes = {cls: random_regime_model(cls, version, seed + i) for i, cls in enumerate(asset_classes)}
    return ModelBundle(version, random_meta_policy(version, seed), regimes, source=f"test:random:{seed}")


def write_bundle(bundle: ModelBundle, folder: Path) -> Path:
    """Write ``bundle`` as ``load_bundle`` reads it (manifest + one JSON per artifact); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(bundle.meta.to_dict()))
    regimes = {}
    for cls, model in bundle.regimes.items():
        regimes[cls] = f"regime_{cls}.json"
        (folder / regimes[cls]).write_text(json.dumps(model.to_dict()))
    manifest = {"format": BUNDLE_FORMAT, "version": bundle.version, "meta": "meta.json", "regimes": regimes}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder
