"""Each decision state's step as a Lambda runs it: the stage's settings, the container's cached adapters and the
step's metrics around the step itself (``ffe.steps``). Each of the five per-asset handlers calls one of these;
DecideBatch calls all of them for a batch (functions/decide_batch), so an asset is decided, and measured, the same
way on the inline and the Distributed Map (tests/integration/test_decide_batch_parity.py).

Every import is inside its function: a handler's cold import loads only what its own state uses
(tests/template/test_template.py; bench/bench_cold_start.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ffe.contracts import (
        AssetTask,
        CheckStalenessResult,
        DecideInput,
        DecisionRecord,
        DetectRegimeInput,
        GateRiskInput,
        MarketData,
        RegimeResult,
    )


def fetch(task: AssetTask, started: datetime | None = None) -> MarketData:
    """FetchMarketData; ``started`` (default now) is where the decision path's latency runs from."""
    from ffe import utc
    from ffe.adapters.market_data import get_provider
    from ffe.decision_metrics import fetch_metrics
    from ffe.settings import MarketDataSettings, get_settings
    from ffe.steps.fetch import fetch_market_data

    started = started or utc.now()
    settings = get_settings(MarketDataSettings)
    data = fetch_market_data(task, provider=get_provider(settings), lookback=settings.lookback_bars, started_at=started)
    fetch_metrics(data)
    return data


def staleness(data: MarketData) -> CheckStalenessResult:
    """CheckStaleness: the longest meta-controller roll among the versions DetectRegime will read sets the bars
    needed."""
    from datetime import UTC

    from ffe.adapters.models import ModelUnavailableError
    from ffe.decision_metrics import staleness_metrics
    from ffe.domain.features import FeatureParams
    from ffe.domain.strategies import StrategyParams
    from ffe.settings import StalenessSettings, get_settings
    from ffe.steps.regime import cycle_route, stored_bundle
    from ffe.steps.staleness import check_staleness

    settings = get_settings(StalenessSettings)
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
    """DetectRegime: the routed version's posterior (and the other arm's, under an experiment)."""
    from ffe.decision_metrics import regime_metrics
    from ffe.domain.features import FeatureParams
    from ffe.steps.regime import detect_regimes, stored_bundle

    result = detect_regimes(inp, stored_bundle, FeatureParams())
    regime_metrics(inp, result)
    return result


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
    import os

    from ffe.adapters.inference import get_inference
    from ffe.contracts import DecisionRecord
    from ffe.decision_metrics import inference_metrics
    from ffe.domain.strategies import StrategyParams
    from ffe.settings import InferenceSettings, get_settings
    from ffe.steps.infer import UNAVAILABLE, infer_outcomes, split_by_llm

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
    """GateRisk on the stage's venue for the asset (its class the universe file's, else the table's)."""
    from ffe.adapters.brokers_factory import get_broker, get_equity_memory, get_reservations, risk_limits
    from ffe.decision_metrics import gate_metrics, risk_violation_alarm
    from ffe.settings import RiskSettings, get_settings
    from ffe.stage_data import deployed
    from ffe.steps.gate import gate_risk

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
