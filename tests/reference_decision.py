"""The decision in numpy, for the tests to check others against: the meta-controller's regime-aware blend of
the strategies, or the naive router when the champion model cannot be used (and every such decision says why).

No Lambda runs this: in the cycle, InferDecision asks the endpoint, whose RL voter computes the same weights
with the TorchScript policy (within 1e-5). The backtester is checked against it
(tests/unit/backtest/test_backtest_parity.py), and so is DetectRegime's output on real bars
(tests/unit/steps/test_regime_and_decide.py)."""

from __future__ import annotations

import numpy as np

from ffe.adapters.models import ModelBundle, ModelUnavailableError
from ffe.contracts import DecideInput, DecisionRecord
from ffe.domain.ensemble import META_CONTROLLER, NAIVE_ROUTER, NAIVE_ROUTER_VERSION, Blend, naive_router, weighted_blend
from ffe.domain.meta import OPTIONS, latest_weights
from ffe.domain.strategies import StrategyParams, score_all


def decide(
    inp: DecideInput, bundle: ModelBundle | ModelUnavailableError, params: StrategyParams, entry_threshold: float
) -> DecisionRecord:
    """Score the series with every strategy; blend with the meta-controller's weights when it can run."""
    bars = inp.domain_bars()
    scores = score_all(bars, params)
    weights, why_not = _meta_weights(inp, bundle)
    blend: Blend
    if weights is not None and isinstance(bundle, ModelBundle):
        blend = weighted_blend(scores, weights, entry_threshold)
        model, version, reason = META_CONTROLLER, bundle.version, blend.reason
        if inp.regime is not None and inp.regime.label is not None:
            reason += f"; regime {inp.regime.label} ({inp.regime.probabilities[inp.regime.label]:.2f})"
    else:
        blend = naive_router(scores, entry_threshold)
        model, version = NAIVE_ROUTER, NAIVE_ROUTER_VERSION
        reason = f"naive router fallback ({why_not}); {blend.reason}"
    regime = inp.regime
    return DecisionRecord(
        cycle_id=inp.cycle_id,
        as_of=inp.as_of,
        timeframe=inp.timeframe,
        asset=inp.asset,
        execution_id=inp.execution_id,
        bar_time=bars[-1].time,
        action=blend.action,
        confidence=blend.confidence,
        stale=False,
        reason=reason[:2000],
        data_age_seconds=inp.staleness.age_seconds,
        staleness_threshold_seconds=inp.staleness.threshold_seconds,
        model=model,
        model_version=version,
        signals={str(name): round(score, 6) for name, score in scores.items()},
        source=inp.source,
        input_sha256=inp.bars_sha256,
        regime=regime.label if regime is not None and regime.available else None,
        regime_probabilities=dict(regime.probabilities) if regime is not None and regime.available else {},
        weights={name: round(w, 6) for name, w in weights.items()} if weights is not None else {},
    )


def _meta_weights(inp: DecideInput, bundle: ModelBundle | ModelUnavailableError) -> tuple[dict[str, float] | None, str]:
    """The meta-controller's weights, or None and the reason it cannot run on this input."""
    if isinstance(bundle, ModelUnavailableError):
        return None, str(bundle)
    regime = inp.regime
    if regime is None:
        return None, "no regime was detected for this decision"
    if not regime.available:
        return None, f"regime unavailable: {regime.reason}"
    if regime.model_version != bundle.version:
        return None, f"regime from model {regime.model_version}, meta-controller is {bundle.version}"
    policy = bundle.meta
    if len(regime.path_posteriors) < policy.roll_bars:
        have = len(regime.path_posteriors)
        return None, f"the meta-controller rolls over {policy.roll_bars} bars, the regime path has {have}"
    raw = latest_weights(policy, np.asarray(regime.path_features), np.asarray(regime.path_posteriors))
    return {str(option): float(w) for option, w in zip(OPTIONS, raw, strict=True)}, ""
