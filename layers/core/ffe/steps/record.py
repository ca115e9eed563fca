"""RecordDecision: write a decision or a failure exactly once."""

from __future__ import annotations

import json

from ffe.adapters.store import DecisionStore
from ffe.contracts import CycleInput, DecisionRecord, FailureRecord, RecordDecisionResult, parse
from ffe.domain.errors import InvalidInputError


def record(rec: DecisionRecord | FailureRecord, store: DecisionStore) -> RecordDecisionResult:
    """Store ``rec`` idempotently; a retried task gets the first write's id with ``created=False``."""
    if isinstance(rec, DecisionRecord):
        stored = store.record_decision(rec)
        return RecordDecisionResult(
            kind="decision", id=stored.id, created=stored.created, cycle_id=rec.cycle_id, asset=rec.asset,
            action=rec.action,
        )  # fmt: skip
    rec, message = explain_failure(rec)
    stored = store.record_failure(rec, message)
    return RecordDecisionResult(
        kind="failure", id=stored.id, created=stored.created, cycle_id=rec.cycle_id, asset=rec.asset, error=rec.error
    )


def explain_failure(rec: FailureRecord) -> tuple[FailureRecord, str]:
    """The failure's human message; a cycle whose input was malformed is re-validated to name the field."""
    if rec.cycle_input is not None:
        try:
            parse(CycleInput, rec.cycle_input)
        except InvalidInputError as exc:
            cycle_id = rec.cycle_id
            if isinstance(rec.cycle_input, dict) and isinstance(rec.cycle_input.get("cycle_id"), str):
                cycle_id = rec.cycle_input["cycle_id"]
            fixed = rec.model_copy(update={"error": InvalidInputError.__name__, "cycle_id": cycle_id})
            return fixed, str(exc)
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
