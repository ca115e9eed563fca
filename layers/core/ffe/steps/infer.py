"""InferDecision: the GPU endpoint's ensemble (RL meta-controller + LLM vote) decides; if the endpoint cannot
answer, the decision is a HOLD that says ``inference_unavailable`` and why (fail closed, never fabricated)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ffe.adapters.inference import InferenceUnavailableError
from ffe.contracts import (
    ArmOutput,
    BarsSummary,
    DecideInput,
    DecisionRecord,
    InferenceInstance,
    InferencePrediction,
    InferenceRequest,
    InferenceResponse,
    RegimeResult,
)
from ffe.domain.experiments import Route
from ffe.domain.models import Action, BarColumnsLike, open_time
from ffe.domain.ports import InferenceClient
from ffe.domain.strategies import StrategyParams, score_columns
from ffe.steps.regime import cycle_route

T = TypeVar("T")

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
    """Ask the endpoint for this asset's decision; a HOLD naming the failure when it cannot answer.

    While an experiment covers the asset, the other arm's version is served in the same call (reusing the acting
    arm's LLM vote) and recorded at ``arms`` beside the decision; the decision is the acting arm's alone.
    (:func:`infer_decisions` for one asset: one code path for the inline Map and a batch.)
    """
    return infer_decisions([inp], client, params, entry_threshold, llm, trace_header)[0]


def infer_decisions(
    inps: Sequence[DecideInput],
    client: InferenceClient,
    params: StrategyParams,
    entry_threshold: float,
    llm: bool = True,
    trace_header: str | None = None,
) -> list[DecisionRecord]:
    """:func:`infer_decision` for every asset of ``inps`` in ONE endpoint call; each record exactly as that asset
    alone would get it (with a client that answers each instance on its own).

    Raises:
        Exception: the first asset's own error (:func:`infer_outcomes` keeps each asset's apart).
    """
    outcomes = infer_outcomes(inps, client, params, entry_threshold, llm, trace_header)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return cast(list[DecisionRecord], outcomes)


def infer_outcomes(
    inps: Sequence[DecideInput],
    client: InferenceClient,
    params: StrategyParams,
    entry_threshold: float,
    llm: bool = True,
    trace_header: str | None = None,
) -> list[DecisionRecord | Exception]:
    """Each asset's record, in the order of ``inps``, from one ``client.infer`` call for all of them (none when no
    asset has a regime path to send), or the exception that asset's own input raised (its instance or its record
    would not build), so one asset's error never fails the others.

    Asset ``i``'s instances sit at consecutive indices of the combined request (the acting arm's, then under an
    experiment the other arm's with ``llm_vote_from`` naming the acting one's absolute index); the endpoint answers
    one prediction per instance, in order. An ``InferenceUnavailableError``, or an answer without one prediction
    per instance, makes every asset that was asked a HOLD ``inference_unavailable: ...``. Any other error of the
    call itself is no asset's own: it propagates.
    """
    outcomes: list[DecisionRecord | Exception | None] = [None] * len(inps)
    asked: dict[int, _Asked] = {}
    instances: list[InferenceInstance] = []
    for i, inp in enumerate(inps):
        try:
            prepared = _prepare(inp, params, entry_threshold, first=len(instances))
        except Exception as exc:  # this asset's input: its failure alone
            outcomes[i] = exc
            continue
        if isinstance(prepared, DecisionRecord):  # no regime path: a HOLD without asking
            outcomes[i] = prepared
            continue
        asked[i] = prepared
        instances.extend(prepared.instances)
    if asked:
        try:
            response = client.infer(InferenceRequest(instances=instances, llm=llm), trace_header)
            if len(response.predictions) != len(instances):
                raise InferenceUnavailableError(
                    f"the endpoint answered {len(response.predictions)} predictions for {len(instances)} instances"
                )
        except InferenceUnavailableError as exc:
            for i, one in asked.items():
                outcomes[i] = _hold(one.common, f"{UNAVAILABLE}: {exc}", one.route)
        else:
            for i, one in asked.items():
                try:
                    outcomes[i] = _record(one, response)
                except Exception as exc:  # this asset's answer would not make a record: its failure alone
                    outcomes[i] = exc
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass(frozen=True)
class _Asked:
    """One asset's part of the combined request: its record's common fields, its route, and its instances (the
    acting arm's at ``first``, the other arm's next when ``other`` was served)."""

    common: dict[str, Any]
    route: Route | None
    first: int
    instances: list[InferenceInstance]
    other: RegimeResult | None


def _prepare(inp: DecideInput, params: StrategyParams, entry_threshold: float, first: int) -> _Asked | DecisionRecord:
    """The asset's instances, numbered from ``first`` in the combined request; a HOLD when it has no regime path."""
    bars = inp.bars  # read as columns: no Bar is rebuilt
    scores = {str(name): round(value, 6) for name, value in score_columns(bars, params).items()}
    regime = inp.regime
    route = cycle_route(inp) if inp.models is not None else None
    common: dict[str, Any] = {
        "cycle_id": inp.cycle_id,
        "as_of": inp.as_of,
        "timeframe": inp.timeframe,
        "asset": inp.asset,
        "asset_class": inp.asset_class,
        "execution_id": inp.execution_id,
        "bar_time": open_time(bars, -1),
        "bar_close": bars.close[-1],
        "stale": False,
        "data_age_seconds": inp.staleness.age_seconds,
        "staleness_threshold_seconds": inp.staleness.threshold_seconds,
        "signals": scores,
        "source": inp.source,
        "input_sha256": inp.bars_sha256,
        "regime": regime.label if regime is not None and regime.available else None,
        "regime_probabilities": dict(regime.probabilities) if regime is not None and regime.available else {},
    }
    if route is not None and route.experiment_id is not None:
        common.update(experiment_id=route.experiment_id, arm=route.acting_arm)
    if regime is None or not regime.available:
        why = "no regime was detected" if regime is None else f"regime unavailable: {regime.reason}"
        return _hold(common, f"{UNAVAILABLE}: the RL voter needs the regime path ({why})", route)
    instances = [_instance(inp, bars, scores, regime, entry_threshold, route.acting_version if route else None)]
    other = regime.other if route is not None and route.other_version is not None else None
    if other is not None and other.available:
        instances.append(
            _instance(inp, bars, scores, other, entry_threshold, route.other_version if route else None, first)
        )
    return _Asked(common, route, first, instances, other)


def _record(asked: _Asked, response: InferenceResponse) -> DecisionRecord:
    """The asset's record from its predictions (at ``asked.first``, and the other arm's after it)."""
    common, route, other = asked.common, asked.route, asked.other
    prediction = response.predictions[asked.first]
    rl = next((v for v in prediction.voters if v.voter == "rl"), None)
    record = DecisionRecord(
        **common,
        action=prediction.action,
        confidence=prediction.confidence,
        reason=f"{prediction.reason} [rule {prediction.rule}; {response.device}]"[:2000],
        model=INFERENCE_MODEL,
        model_version=(rl.model_version if rl is not None and rl.model_version else response.model_version)[:64],
        weights=dict(rl.weights) if rl is not None else {},
        voters=prediction.voters,
    )
    if route is None or route.other_version is None or route.acting_arm is None or route.other_arm is None:
        return record
    if len(asked.instances) > 1:
        other_output = _arm_output(route.other_version, response.predictions[asked.first + 1])
    else:
        why = other.reason if other is not None else "DetectRegime computed no regime for it"
        other_output = ArmOutput(model_version=route.other_version, action=None, reason=f"not served: {why}"[:500])
    arms = {route.acting_arm: _arm_output(route.acting_version, prediction), route.other_arm: other_output}
    return record.model_copy(update={"arms": arms})


def _instance(
    inp: DecideInput,
    bars: BarColumnsLike,
    scores: dict[str, float],
    regime: RegimeResult,
    entry_threshold: float,
    version: str | None,
    llm_vote_from: int | None = None,
) -> InferenceInstance:
    return InferenceInstance(
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
        model_version=version,
        llm_vote_from=llm_vote_from,
    )


def _arm_output(version: str, prediction: InferencePrediction) -> ArmOutput:
    """An arm's model output: the prediction when its RL voter voted, else no action and why."""
    rl = next((v for v in prediction.voters if v.voter == "rl"), None)
    latency = rl.latency_ms if rl is not None else 0.0
    if rl is None or rl.status != "voted":
        why = rl.reasoning if rl is not None else "the endpoint returned no RL vote"
        return ArmOutput(model_version=version, action=None, latency_ms=latency, reason=f"RL voter: {why}"[:500])
    return ArmOutput(
        model_version=version,
        action=prediction.action,
        confidence=prediction.confidence,
        latency_ms=latency,
        reason=prediction.reason[:500],
    )


def summarize(bars: BarColumnsLike) -> BarsSummary:
    """What the LLM is told about the bars."""
    closes = bars.close
    return BarsSummary(
        bars=len(closes),
        first_time=open_time(bars, 0),
        last_time=open_time(bars, -1),
        last_close=closes[-1],
        change_pct=round((closes[-1] / closes[0] - 1.0) * 100.0, 4),
        high=max(bars.high),
        low=min(bars.low),
    )


def _hold(common: dict[str, Any], reason: str, route: Route | None) -> DecisionRecord:
    arms: dict[str, ArmOutput] = {}
    if route is not None and route.acting_arm is not None and route.other_arm is not None and route.other_version:
        arms = {
            route.acting_arm: ArmOutput(model_version=route.acting_version, action=None, reason=reason[:500]),
            route.other_arm: ArmOutput(
                model_version=route.other_version, action=None, reason="not served: the acting arm could not decide"
            ),
        }
    return DecisionRecord(
        **common,
        action=Action.HOLD,
        confidence=1.0,
        reason=reason[:2000],
        model=INFERENCE_MODEL,
        model_version="unavailable",
        arms=arms,
    )


def split_by_llm(
    inps: Sequence[DecideInput],
    wants_llm: Callable[[DecideInput], bool],
    ask: Callable[[Sequence[DecideInput], bool], Sequence[T]],
) -> list[T]:
    """``ask`` with the LLM voter for the inputs ``wants_llm`` admits and without it for the rest: at most two
    requests, none for an empty group; the answers in ``inps``' order."""
    groups: dict[bool, list[int]] = {True: [], False: []}
    for index, inp in enumerate(inps):
        groups[wants_llm(inp)].append(index)
    answers: dict[int, T] = {}
    for llm, indices in groups.items():
        if indices:
            got = ask([inps[i] for i in indices], llm)
            if len(got) != len(indices):
                raise RuntimeError(f"inference answered {len(got)} outcomes for {len(indices)} assets")
            answers.update(zip(indices, got, strict=True))
    return [answers[i] for i in range(len(inps))]
