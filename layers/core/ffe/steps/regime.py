"""DetectRegime: the regime posterior at the decision's bar, from the champion's mixture for the asset class."""

from __future__ import annotations

import numpy as np

from ffe.adapters.models import ModelBundle, ModelUnavailableError
from ffe.contracts import DetectRegimeInput, RegimeResult
from ffe.domain.features import FEATURE_NAMES, FeatureParams, feature_matrix
from ffe.domain.regime import dominant, posterior
from ffe.domain.universe import asset_class_of


def detect_regime(
    inp: DetectRegimeInput, bundle: ModelBundle | ModelUnavailableError, params: FeatureParams
) -> RegimeResult:
    """Posterior over the last ``roll_bars`` bars (the meta-controller's roll); unavailable says why."""
    if isinstance(bundle, ModelUnavailableError):
        return RegimeResult(available=False, reason=str(bundle))
    asset_class = str(asset_class_of(inp.asset))
    model = bundle.regimes.get(asset_class)
    if model is None:
        return RegimeResult(
            available=False,
            reason=f"model {bundle.version} has no regime model for {asset_class}",
            asset_class=asset_class,
        )
    closes = np.fromiter((b.close for b in inp.bars), np.float64, len(inp.bars))
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
