"""InferDecision's step with the stage's endpoint and its metrics."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ffe.adapters.inference import get_inference
from ffe.contracts import DecideInput, DecisionRecord
from ffe.decision_metrics import inference_metrics
from ffe.domain.strategies import StrategyParams
from ffe.settings import InferenceSettings, get_settings
from ffe.steps.infer import UNAVAILABLE, infer_outcomes, split_by_llm


def infer(inp: DecideInput) -> DecisionRecord:
    """InferDecision for one asset: the endpoint's ensemble, or a HOLD that says ``inference_unavailable``."""
    [outcome] = infer_many([inp])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def infer_many(
    inps: Sequence[DecideInput], llm_assets: frozenset[str] | None = None
) -> list[DecisionRecord | Exception]:
    """InferDecision for a batch: one endpoint request, two when the cycle's LLM budget ends inside the batch
    (``llm_assets``: the batch's assets within it; None: no budget). Each asset's record, or its own error."""
    settings = get_settings(InferenceSettings)
    trace = os.environ.get("_X_AMZN_TRACE_ID")  # the Lambda's X-Ray trace, carried into the container's spans

    def ask(group: Sequence[DecideInput], llm: bool) -> list[DecisionRecord | Exception]:
        return infer_outcomes(group, get_inference(settings), StrategyParams(), settings.entry_threshold, llm, trace)

    def wants_llm(inp: DecideInput) -> bool:
        return settings.inference_llm and (llm_assets is None or inp.asset in llm_assets)

    outcomes = split_by_llm(inps, wants_llm, ask)
    for outcome in outcomes:
        if isinstance(outcome, DecisionRecord):
            inference_metrics(outcome, outcome.reason.startswith(UNAVAILABLE))
    return outcomes
