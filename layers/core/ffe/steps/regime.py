"""DetectRegime: the regime posterior at the decision's bar, from the mixture for the asset class of the version
the cycle routed the asset to, and of the other arm's version while an experiment covers the asset."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ffe.adapters.models import ModelBundle, ModelUnavailableError, bundled_version, get_model_store
from ffe.contracts import CycleModels, DetectRegimeInput, MarketData, RegimeResult
from ffe.domain.experiments import Route
from ffe.domain.features import FEATURE_NAMES, FeatureParams, feature_matrix
from ffe.domain.regime import dominant, posterior
from ffe.domain.universe import class_of

BundleLoader = Callable[[str], ModelBundle | ModelUnavailableError]


def stored_bundle(version: str) -> ModelBundle | ModelUnavailableError:
    """The version's bundle from the stage's model store, or why it cannot be used (the decision says it)."""
    try:
        return get_model_store().bundle(version)
    except ModelUnavailableError as exc:
        return exc


def cycle_route(data: MarketData) -> Route:
    """The versions deciding ``data.asset`` in its cycle; an input without the cycle's models (a step invoked
    on its own) is decided by the bundled champion."""
    models = data.models if data.models is not None else CycleModels(champion=bundled_version())
    return models.route(data.asset)


def detect_regimes(inp: DetectRegimeInput, load: BundleLoader, params: FeatureParams) -> RegimeResult:
    """The acting version's regime, with the other arm's at ``other`` when an experiment covers the asset."""
    route = cycle_route(inp)
    result = detect_regime(inp, load(route.acting_version), params)
    if route.other_version is None:
        return result
    return result.model_copy(update={"other": detect_regime(inp, load(route.other_version), params)})


def detect_regime(
    inp: DetectRegimeInput, bundle: ModelBundle | ModelUnavailableError, params: FeatureParams
) -> RegimeResult:
    """Posterior over the last ``roll_bars`` bars (the meta-controller's roll); unavailable says why."""
    if isinstance(bundle, ModelUnavailableError):
        return RegimeResult(available=False, reason=str(bundle))
    asset_class = str(class_of(inp.asset, inp.asset_class))
    model = bundle.regimes.get(asset_class)
    if model is None:
        return RegimeResult(
            available=False,
            reason=f"model {bundle.version} has no regime model for {asset_class}",
            asset_class=asset_class,
        )
    closes = np.array(inp.bars.close, np.float64)
    rows = feature_matrix(closes, params)[-bundle.meta.roll_bars :]
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    if rows.shape[0] == 0:
        return RegimeResult(
            available=False,
            reason=f"regime features need {params.warmup} bars, got {closes.size}",
            model_version=bundle.version,
            asset_class=asset_class,
        )
    probs = posterior(model, rows)
    return RegimeResult(
        available=True,
        model_version=bundle.version,
        asset_class=asset_class,
        label=dominant(model, probs[-1]),
        probabilities={label: round(float(p), 6) for label, p in zip(model.labels, probs[-1], strict=True)},
        features={name: float(v) for name, v in zip(FEATURE_NAMES, rows[-1], strict=True)},
        path_features=rows.tolist(),
        path_posteriors=np.clip(probs, 0.0, 1.0).tolist(),
    )
