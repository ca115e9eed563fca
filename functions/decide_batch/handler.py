"""DecideBatch: a Distributed Map batch of assets decided in one invocation (fetch, staleness, regime, one inference
call, the risk gate), each asset exactly as the five per-asset functions decide it, with the same metrics."""

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe import utc
from ffe.adapters.brokers_factory import get_broker, get_equity_memory, get_reservations, risk_limits
from ffe.adapters.inference import get_inference
from ffe.adapters.market_data import get_provider
from ffe.adapters.models import ModelUnavailableError
from ffe.contracts import (
    AssetTask,
    CheckStalenessResult,
    DecideBatchInput,
    DecideInput,
    DecisionRecord,
    DetectRegimeInput,
    GateRiskInput,
    MarketData,
    RegimeResult,
    parse,
)
from ffe.decision_metrics import (
    fetch_metrics,
    gate_metrics,
    inference_metrics,
    regime_metrics,
    risk_violation_alarm,
    staleness_metrics,
)
from ffe.domain.features import FeatureParams
from ffe.domain.strategies import StrategyParams
from ffe.observability import logger, timed, tracer
from ffe.settings import InferenceSettings, MarketDataSettings, RiskSettings, StalenessSettings, get_settings
from ffe.stage_data import deployed
from ffe.steps.batch import BatchStages, decide_batch
from ffe.steps.fetch import fetch_market_data
from ffe.steps.gate import gate_risk
from ffe.steps.infer import UNAVAILABLE, infer_outcomes, split_by_llm
from ffe.steps.regime import cycle_route, detect_regimes, stored_bundle
from ffe.steps.staleness import check_staleness


@logger.inject_lambda_context(correlation_id_path="BatchInput.execution_id")
@tracer.capture_lambda_handler
@timed("decide_batch")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DecideBatchInput, event)
    logger.append_keys(cycle_id=inp.batch.cycle_id, timeframe=inp.batch.timeframe)
    result = decide_batch(inp, stages(inp), remaining_ms=context.get_remaining_time_in_millis)
    kinds = [r.kind for r in result.records]
    logger.info("batch decided", extra={"assets": len(kinds), "failures": kinds.count("failure")})
    return result.model_dump(mode="json", by_alias=True)


# Each stage is its function's handler without the JSON: the same settings, cached factories and metrics.


def fetch(task: AssetTask) -> MarketData:
    started = utc.now()  # the decision path's latency (RecordDecision) runs from here
    settings = get_settings(MarketDataSettings)
    data = fetch_market_data(task, provider=get_provider(settings), lookback=settings.lookback_bars, started_at=started)
    fetch_metrics(data)
    return data


def staleness(data: MarketData) -> CheckStalenessResult:
    settings = get_settings(StalenessSettings)
    # the versions DetectRegime will read: the longest meta-controller roll among them sets the bars needed
    bundles = [stored_bundle(v) for v in cycle_route(data).versions]
    rolls = [b.meta.roll_bars for b in bundles if not isinstance(b, ModelUnavailableError)]
    result = check_staleness(
        data,
        clock=lambda: datetime.now(UTC),
        params=StrategyParams(),
        features=FeatureParams(),
        roll_bars=max(rolls) if rolls else None,
        daily_max_missing_sessions=settings.daily_max_missing_sessions,
    )
    staleness_metrics(data, result)
    return result


def regime(inp: DetectRegimeInput) -> RegimeResult:
    result = detect_regimes(inp, stored_bundle, FeatureParams())
    regime_metrics(inp, result)
    return result


def infer_many(
    inps: Sequence[DecideInput], llm_assets: frozenset[str] | None = None
) -> list[DecisionRecord | Exception]:
    """One endpoint request for the batch; two when the cycle's LLM budget ends inside it (``llm_assets``: the
    batch's assets within the budget, None: no budget)."""
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


def gate(inp: GateRiskInput) -> DecisionRecord:
    settings = get_settings(RiskSettings)
    broker = get_broker(settings, inp.as_of, inp.asset, inp.asset_class)
    record = gate_risk(
        inp,
        broker,
        risk_limits(settings),
        risk_violation_alarm,
        get_reservations(settings),
        memory=get_equity_memory(settings),
        stage=settings.stage,
        in_lambda=deployed(),
    )
    gate_metrics(record, broker.account_id)
    return record


STAGES = BatchStages(fetch=fetch, staleness=staleness, regime=regime, infer_many=infer_many, gate=gate)


def stages(inp: DecideBatchInput) -> BatchStages:
    """The stages for this batch: with an LLM budget, the LLM voter votes only on the assets whose position in the
    cycle's universe is within it (INFERENCE_LLM_ASSETS_PER_CYCLE)."""
    budget = get_settings(InferenceSettings).inference_llm_assets_per_cycle
    if budget is None:
        return STAGES
    within = frozenset(str(item.asset) for item in inp.items if item.item < budget)
    return replace(STAGES, infer_many=partial(infer_many, llm_assets=within))
