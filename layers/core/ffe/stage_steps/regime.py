"""DetectRegime's step with the model store and its metrics."""

from __future__ import annotations

from ffe.contracts import DetectRegimeInput, RegimeResult
from ffe.decision_metrics import regime_metrics
from ffe.domain.features import FeatureParams
from ffe.steps.regime import detect_regimes, stored_bundle


def regime(inp: DetectRegimeInput) -> RegimeResult:
    """DetectRegime: the routed version's posterior (and the other arm's, under an experiment)."""
    result = detect_regimes(inp, stored_bundle, FeatureParams())
    regime_metrics(inp, result)
    return result
