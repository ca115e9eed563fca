"""The metrics the decision steps emit, read off what each step returns (names: ffe.observability): one function per
step, called by its handler and, for each asset of a batch, by DecideBatch, so a batched asset emits exactly what
an inline one does.

The asset is a property of every one of them, never a dimension: one metric per asset would multiply the
metric count (and the bill) by the universe's size, and Logs Insights finds an asset's documents anyway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ffe import utc
from ffe.contracts import (
    CheckStalenessResult,
    CycleClosed,
    DecisionRecord,
    FailureRecord,
    MarketData,
    Record,
    RecordDecisionResult,
    RegimeResult,
)
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Timeframe
from ffe.domain.staleness import GateCode
from ffe.domain.universe import asset_class_of
from ffe.observability import emit, logger

TIMEFRAMES = frozenset(t.value for t in Timeframe)


def record_metrics(record: Record, result: RecordDecisionResult, now: datetime | None = None) -> None:
    """RecordDecision's metrics: decisions by action, HOLD reasons, the decision path's latency, failures by
    step, cycle events by timeframe, duplicates, and records kept only in the execution history."""
    asset = {"asset": result.asset} if result.asset else {}
    if not result.created:
        emit("duplicate_records", 1, {"kind": result.kind, **asset})
    elif isinstance(record, DecisionRecord):
        emit("decisions", 1, asset, action=str(result.action))
        if str(result.action) == "HOLD":
            emit(
                "hold_reasons",
                1,
                asset,
                reason=hold_reason(record),
                asset_class=asset_class(record.asset, record.asset_class),
            )
        latency = record.path_latency_ms(now or utc.now())
        if latency is not None:
            emit("decision_latency_ms", latency, asset)
        if record.experiment_id is not None and record.arm is not None:
            experiment_metrics(record, record.experiment_id, record.arm)
    elif isinstance(record, FailureRecord):
        step = failed_step(record)
        emit("failures", 1, {"error": result.error, **asset}, step=step)
        if step == "cycle":
            raw = record.cycle_input if isinstance(record.cycle_input, dict) else {}
            emit("cycles", 1, {"cycle_id": result.cycle_id}, event="failed", timeframe=timeframe(raw.get("timeframe")))
    else:
        event = "skipped" if result.cycle_status == "SKIPPED" else result.kind.removeprefix("cycle_")
        emit("cycles", 1, {"cycle_id": result.cycle_id}, event=event, timeframe=timeframe(result.timeframe))
    lost = record.lost() if isinstance(record, CycleClosed) and result.created else []
    if lost:  # these records are nowhere a replay can reach
        logger.critical("records kept only in the execution history", extra={"assets": [o.asset for o in lost]})
        emit("records_lost", len(lost), {"assets": [str(o.asset) for o in lost]})


def experiment_metrics(record: DecisionRecord, experiment: str, arm: str) -> None:
    """Per decision an experiment covered: the arm that acted, whether both arms chose the same action, each
    arm's inference time, and the treatment's confidence less the control's (``docs/experiments.md``)."""
    asset = {"asset": record.asset}
    emit("experiment_decisions", 1, asset, experiment=experiment, arm=arm)
    for name, output in record.arms.items():
        emit("experiment_latency_ms", output.latency_ms, asset, experiment=experiment, arm=name)
    control, treatment = record.arms.get("control"), record.arms.get("treatment")
    if control is None or treatment is None or control.action is None or treatment.action is None:
        emit("experiment_agreement", 1, asset, experiment=experiment, result="absent")
        return
    result = "agree" if control.action == treatment.action else "disagree"
    emit("experiment_agreement", 1, asset, experiment=experiment, result=result)
    if control.confidence is not None and treatment.confidence is not None:
        emit(
            "experiment_confidence_delta",
            round(treatment.confidence - control.confidence, 6),
            asset,
            experiment=experiment,
        )


def hold_reason(record: DecisionRecord) -> str:
    """The data gate's rule ("gappy_data: ..." -> gappy_data; "stale data: ..." -> stale_data), risk_blocked,
    inference_unavailable or no_signal."""
    if record.stale:
        code = record.reason.split(":", 1)[0].strip()
        return code if code in {c.value for c in GateCode} - {GateCode.FRESH, GateCode.STALE} else "stale_data"
    if record.risk is not None and not record.risk.approved:
        return "risk_blocked"
    if record.model_version == "unavailable" and record.reason.startswith("inference_unavailable"):
        return "inference_unavailable"
    return "no_signal"


def failed_step(record: FailureRecord) -> str:
    """The step a failure record names; a cycle-level failure is the cycle's; an older record says unknown."""
    if record.cycle_failure or record.cycle_input is not None:
        return "cycle"
    return record.step or "unknown"


def asset_class(asset: str, given: str | None = None) -> str:
    """The asset's class as a dimension: the one its universe file gave (``given``), else the built-in table's, else
    "unknown"."""
    if given is not None:
        return str(given)
    try:
        return str(asset_class_of(asset))
    except InvalidInputError:
        return "unknown"


def timeframe(value: Any) -> str:
    """A timeframe dimension: one of the known ones, or "unknown" (a malformed input never adds a metric)."""
    return value if isinstance(value, str) and value in TIMEFRAMES else "unknown"


def inference_metrics(record: DecisionRecord, unavailable: bool) -> None:
    """InferDecision's metrics: endpoint availability, the bundle that decided, the LLM's time and agreement."""
    asset = {"asset": record.asset}
    emit("inference_unavailable", int(unavailable), asset)
    if unavailable:
        return
    emit("model_in_service", 1, asset, model_version=record.model_version)
    rl = next((v for v in record.voters if v.voter == "rl" and v.status == "voted"), None)
    llm = next((v for v in record.voters if v.voter == "llm" and v.status == "voted"), None)
    if llm is not None:
        emit("llm_latency_ms", llm.latency_ms, asset)
    agreement = "absent" if rl is None or llm is None else "agree" if rl.action == llm.action else "disagree"
    emit("llm_agreement", 1, asset, result=agreement)


def fetch_metrics(data: MarketData) -> None:
    """FetchMarketData's metrics: the bars fetched and, on a live route, the cache's share and the providers passed
    over; a warning when bars still forming at as_of were dropped."""
    where = {"asset": data.asset, "provider": data.source.provider}
    emit("bars_fetched", len(data.bars), where)
    if data.source.route:  # live: how much came from the cache, and how many providers were passed over
        hit_rate = 100.0 * data.source.cached_bars / len(data.bars) if data.bars else 0.0
        emit("cache_hit_rate", round(hit_rate, 2), where)
        fallbacks = sum(1 for step in data.source.route if step.outcome != "ok")
        emit("provider_fallbacks", fallbacks, where)
    if data.source.forming_bars_dropped:
        logger.warning(
            "dropped bars still forming at as_of",
            extra={"asset": data.asset, "dropped": data.source.forming_bars_dropped},
        )


def staleness_metrics(data: MarketData, result: CheckStalenessResult) -> None:
    """CheckStaleness's metrics: the data's age, and whether the gate refused the series (with its code)."""
    where = {"asset": data.asset, "timeframe": str(data.timeframe)}
    if result.age_seconds is not None:
        emit("data_staleness_seconds", result.age_seconds, where)
    emit("stale_series", int(result.stale), {**where, "code": str(result.code)})


def regime_metrics(data: MarketData, result: RegimeResult) -> None:
    """DetectRegime's metrics: the posterior, one value per regime, by asset class."""
    klass = result.asset_class or asset_class(data.asset, data.asset_class)
    for regime, probability in result.probabilities.items():
        emit("regime_probability", probability, {"asset": data.asset}, asset_class=klass, regime=regime)


def gate_metrics(record: DecisionRecord, account: str) -> None:
    """GateRisk's metrics: a block by its first rule, and the account's equity after settling."""
    if record.risk is not None and not record.risk.approved:
        rule = record.risk.reasons[0] if record.risk.reasons else "blocked"
        emit("risk_blocks", 1, {"asset": record.asset, "reasons": record.risk.reasons}, rule=rule)
    if record.risk is not None and record.risk.equity is not None:  # the account's equity, after settling
        emit("portfolio_value", float(record.risk.equity), {"asset": record.asset}, account=account)


def risk_violation_alarm(asset: str, broken: list[str]) -> None:
    """GateRisk's alarm for an approval that broke a limit: a critical log line and one ``risk_violation_not_blocked``
    count (the critical alarm of that name)."""
    logger.critical("risk violation caught after approval", extra={"asset": asset, "violations": broken})
    emit("risk_violation_not_blocked", 1, {"asset": asset, "violations": broken})
