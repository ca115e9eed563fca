"""RecordDecision: write a decision or a failure exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ffe.contracts import (
    CycleClosed,
    CycleHeader,
    CycleInput,
    CycleModels,
    CycleOpened,
    DecisionRecord,
    FailureRecord,
    Record,
    RecordDecisionResult,
    parse,
)
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Action
from ffe.domain.ports import DecisionStore, ExecutionStatus
from ffe.observability import logger


def record(
    rec: Record,
    store: DecisionStore,
    execution_status: ExecutionStatus | None = None,
    models: Callable[[], CycleModels] | None = None,
    review: Callable[[], Sequence[object]] | None = None,
) -> RecordDecisionResult:
    """Store ``rec`` idempotently; a retried task gets the first write's id with ``created=False``.

    A cycle opens RUNNING, or SKIPPED (with the reason) while another cycle of its stage and timeframe runs;
    ``execution_status`` tells whether an earlier cycle's execution still runs (Step Functions). A RUNNING
    cycle gets the model versions it serves from ``models`` (the champion and the running experiments, read
    once here, so every asset of the cycle is decided by the versions resolved at its start). A cycle that
    closes SUCCEEDED then has ``review`` judge the running experiments (guardrails, rollback, canary steps:
    ``ffe.experiment_review``); a review that fails is logged and never fails the cycle, whose records are in.

    Raises:
        InvalidInputError: a cycle opened without an id or assets (the execution records why and stops).
    """
    if isinstance(rec, CycleOpened):
        cycle = parse(CycleHeader, rec.cycle)
        opened = store.open_cycle(cycle, rec.execution_id, execution_status)
        running = opened.status != "SKIPPED"
        return RecordDecisionResult(
            models=models() if running and models is not None else None,
            kind=rec.kind,
            id=None,
            created=opened.created,
            cycle_id=cycle.cycle_id,
            asset=None,
            cycle_status="RUNNING" if running else "SKIPPED",
            reason=opened.reason,
            timeframe=cycle.timeframe,
        )
    if isinstance(rec, CycleClosed):
        created = store.close_cycle(rec.cycle_id, rec.status, _lost_reason(rec))
        if review is not None and rec.status == "SUCCEEDED":
            try:
                outcomes = review()
            except Exception as exc:  # the next cycle's close reviews again
                logger.warning("experiment review failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            else:
                logger.info("experiments reviewed", extra={"outcomes": [repr(o) for o in outcomes]})
        return RecordDecisionResult(
            kind=rec.kind, id=None, created=created, cycle_id=rec.cycle_id, asset=None, timeframe=rec.timeframe
        )
    if isinstance(rec, DecisionRecord):
        stored = store.record_decision(rec)
        execute = rec.risk is not None and rec.risk.approved and rec.action is not Action.HOLD
        return RecordDecisionResult(
            kind="decision",
            id=stored.id,
            created=stored.created,
            cycle_id=rec.cycle_id,
            asset=rec.asset,
            action=rec.action,
            execute=execute,
        )
    rec, message = explain_failure(rec)
    stored = store.record_failure(rec, message)
    if (rec.cycle_failure or rec.cycle_input is not None) and rec.cycle_id:  # the cycle failed: close it if opened
        store.close_cycle(rec.cycle_id, "FAILED")
    return RecordDecisionResult(
        kind="failure", id=stored.id, created=stored.created, cycle_id=rec.cycle_id, asset=rec.asset, error=rec.error
    )


def _lost_reason(rec: CycleClosed) -> str:
    lost = rec.lost()
    if not lost:
        return ""
    names = ", ".join(str(o.asset) for o in lost)
    return (
        f"{len(lost)} record(s) neither the decision store nor the dead-letter queue accepted ({names}): each is "
        f"kept only in execution {rec.execution_id}'s history, as the input of its Record decision state"
    )


def explain_failure(rec: FailureRecord) -> tuple[FailureRecord, str]:
    """The failure's human message. A cycle whose input was malformed (not even an object, say) is re-validated
    to name the problem, and recorded under its cycle id or, without one, its execution's name; a field that had
    to be recorded under a sanitized label is named as it was given."""
    given = "; ".join(f"{name} given as {value[:300]!r}" for name, value in rec.given.items())
    suffix = f" ({given})" if given else ""
    if not (rec.cycle_failure or rec.cycle_input is not None):
        return rec, (lambda_error_message(rec.cause) or rec.error) + suffix
    raw = rec.cycle_input
    if not rec.cycle_id:
        named = raw.get("cycle_id") if isinstance(raw, dict) else None
        if isinstance(named, str) and named:
            rec = FailureRecord.model_validate({**rec.model_dump(), "cycle_id": named})
        elif rec.execution_id:
            rec = rec.model_copy(update={"cycle_id": f"execution:{rec.execution_id.rsplit(':', 1)[-1]}"})
    try:
        parse(CycleInput, raw)
    except InvalidInputError as exc:
        return rec.model_copy(update={"error": InvalidInputError.__name__}), str(exc) + suffix
    return rec, (lambda_error_message(rec.cause) or rec.error) + suffix


def lambda_error_message(cause: str) -> str:
    """Lambda reports ``{"errorType", "errorMessage", "stackTrace"}`` as the Step Functions cause."""
    try:
        payload = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
        return payload["errorMessage"]
    return cause
