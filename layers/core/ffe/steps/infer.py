"""InferDecision: the GPU endpoint's ensemble (RL meta-controller + LLM vote) decides; if the endpoint cannot
answer, the decision is a HOLD that says ``inference_unavailable`` and why (fail closed, never fabricated)."""

from __future__ import annotations

from typing import Any

from ffe.adapters.inference import InferenceUnavailableError
from ffe.contracts import BarsSummary, DecideInput, DecisionRecord, InferenceInstance, InferenceRequest
from ffe.domain.models import Action, Bar
from ffe.domain.ports import InferenceClient
from ffe.domain.strategies import StrategyParams, score_all

INFERENCE_MODEL = "inference_ensemble"
UNAVAILABLE = "inference_unavailable"


def infer_decision(
    inp: DecideInput,
    client: InferenceClient,
    params: StrategyParams,
    entry_threshold: float,
    llm: bool = True,
    trace_header: str | None = None,
) -> DecisionRecord:
    """Ask the endpoint for this asset's decision; a HOLD naming the failure when it cannot answer."""
    bars = inp.domain_bars()
    scores = {str(name): round(value, 6) for name, value in score_all(bars, params).items()}
    regime = inp.regime
    common: dict[str, Any] = {
        "cycle_id": inp.cycle_id,
        "as_of": inp.as_of,
        "timeframe": inp.timeframe,
        "asset": inp.asset,
        "execution_id": inp.execution_id,
        "bar_time": bars[-1].time,
        "stale": False,
        "data_age_seconds": inp.staleness.age_seconds,
        "staleness_threshold_seconds": inp.staleness.threshold_seconds,
        "signals": scores,
        "source": inp.source,
        "input_sha256": inp.bars_sha256,
        "regime": regime.label if regime is not None and regime.available else None,
        "regime_probabilities": dict(regime.probabilities) if regime is not None and regime.available else {},
    }
    if regime is None or not regime.available:
        why = "no regime was detected" if regime is None else f"regime unavailable: {regime.reason}"
        return _hold(common, f"{UNAVAILABLE}: the RL voter needs the regime path ({why})")
    instance = InferenceInstance(
        asset=inp.asset,
        timeframe=inp.timeframe,
        as_of=inp.as_of,
        scores=scores,
        regime_label=regime.label,
        regime_probabilities=regime.probabilities,
        regime_model_version=regime.model_version,
        features=regime.features,
        path_features=regime.path_features,
        path_posteriors=regime.path_posteriors,
        summary=summarize(bars),
        entry_threshold=entry_threshold,
    )
    try:
        response = client.infer(InferenceRequest(instances=[instance], llm=llm), trace_header)
    except InferenceUnavailableError as exc:
        return _hold(common, f"{UNAVAILABLE}: {exc}")
    prediction = response.predictions[0]
    rl = next((v for v in prediction.voters if v.voter == "rl"), None)
    return DecisionRecord(
        **common,
        action=prediction.action,
        confidence=prediction.confidence,
        reason=f"{prediction.reason} [rule {prediction.rule}; {response.device}]"[:2000],
        model=INFERENCE_MODEL,
        model_version=response.model_version[:64],
        weights=dict(rl.weights) if rl is not None else {},
        voters=prediction.voters,
    )


def summarize(bars: list[Bar]) -> BarsSummary:
    """What the LLM is told about the bars."""
    first, last = bars[0], bars[-1]
    return BarsSummary(
        bars=len(bars),
        first_time=first.time,
        last_time=last.time,
        last_close=last.close,
        change_pct=round((last.close / first.close - 1.0) * 100.0, 4),
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
    )


def _hold(common: dict[str, Any], reason: str) -> DecisionRecord:
    return DecisionRecord(
        **common,
        action=Action.HOLD,
        confidence=1.0,
        reason=reason[:2000],
        model=INFERENCE_MODEL,
        model_version="unavailable",
    )
