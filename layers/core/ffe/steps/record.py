"""RecordDecision: write a decision or a failure exactly once."""

from __future__ import annotations

import json

from ffe.adapters.store import DecisionStore
from ffe.contracts import (
    CycleClosed,
    CycleHeader,
    CycleInput,
    CycleOpened,
    DecisionRecord,
    FailureRecord,
    Record,
    RecordDecisionResult,
    parse,
)
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Action


def record(rec: Record, store: DecisionStore) -> RecordDecisionResult:
    """Store ``rec`` idempotently; a retried task gets the first write's id with ``created=False``.

    Raises:
        InvalidInputError: a cycle opened without an id or assets (the execution records why and stops).
    """
    if isinstance(rec, CycleOpened):
        cycle = parse(CycleHeader, rec.cycle)
        created = store.open_cycle(cycle, rec.execution_id)
        return RecordDecisionResult(kind=rec.kind, id=None, created=created, cycle_id=cycle.cycle_id, asset=None)
    if isinstance(rec, CycleClosed):
        created = store.close_cycle(rec.cycle_id, rec.status)
        return RecordDecisionResult(kind=rec.kind, id=None, created=created, cycle_id=rec.cycle_id, asset=None)
    if isinstance(rec, DecisionRecord):
        stored = store.record_decision(rec)
        execute = rec.risk is not None and rec.risk.approved and rec.action is not Action.HOLD
        return RecordDecisionResult(
            kind="decision", id=stored.id, created=stored.created, cycle_id=rec.cycle_id, asset=rec.asset,
            action=rec.action, execute=execute,
        )  # fmt: skip
    rec, message = explain_failure(rec)
    stored = store.record_failure(rec, message)
    if rec.cycle_input is not None and rec.cycle_id:  # the whole cycle failed: close it if it was opened
        store.close_cycle(rec.cycle_id, "FAILED")
    return RecordDecisionResult(
        kind="failure", id=stored.id, created=stored.created, cycle_id=rec.cycle_id, asset=rec.asset, error=rec.error
    )


def explain_failure(rec: FailureRecord) -> tuple[FailureRecord, str]:
    """The failure's human message; a cycle whose input was malformed is re-validated to name the field."""
    if rec.cycle_input is None:
        return rec, lambda_error_message(rec.cause) or rec.error
    raw = rec.cycle_input
    if isinstance(raw, dict) and isinstance(raw.get("cycle_id"), str) and not rec.cycle_id:
        rec = rec.model_copy(update={"cycle_id": raw["cycle_id"]})
    try:
        parse(CycleInput, raw)
    except InvalidInputError as exc:
        return rec.model_copy(update={"error": InvalidInputError.__name__}), str(exc)
    return rec, lambda_error_message(rec.cause) or rec.error


def lambda_error_message(cause: str) -> str:
    """Lambda reports ``{"errorType", "errorMessage", "stackTrace"}`` as the Step Functions cause."""
    try:
        payload = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
        return payload["errorMessage"]
    return cause
