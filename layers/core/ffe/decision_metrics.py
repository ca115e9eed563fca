"""The metrics RecordDecision and InferDecision emit, read off the records they handle (names: ffe.observability).

The asset is a property of every one of them, never a dimension: one metric per asset would multiply the
metric count (and the bill) by the universe's size, and Logs Insights finds an asset's documents anyway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ffe import utc
from ffe.contracts import CycleClosed, DecisionRecord, FailureRecord, Record, RecordDecisionResult
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
            emit("hold_reasons", 1, asset, reason=hold_reason(record), asset_class=asset_class(record.asset))
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


def asset_class(asset: str) -> str:
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
