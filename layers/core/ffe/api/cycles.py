"""Cycles on demand: start one on the DecisionCycle state machine, and show one as the database recorded it
merged with what Step Functions says of its execution (``ffe.adapters.executions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from ffe.adapters import executions
from ffe.adapters.executions import StepFunctionsUnavailableError
from ffe.adapters.queries import CycleRows
from ffe.api.models import CycleView, DecisionOutcome, ExecutionStatus, FailureOutcome
from ffe.contracts import CycleInput
from ffe.domain.errors import PermanentError
from ffe.observability import logger, tracer
from ffe.settings import BaseSettings, get_settings

STATE_MACHINE_ARN_PATTERN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
MAX_CAUSE = 4000  # the most characters of an execution's cause that GET /cycles/{id} shows

# Recorded cycle statuses that say the cycle will decide nothing more (its execution may still read SUCCEEDED).
_ENDED_UNDECIDED = {"SKIPPED", "ABORTED", "TIMED_OUT"}


class ApiSettings(BaseSettings):
    state_machine_arn: str | None = Field(default=None, pattern=STATE_MACHINE_ARN_PATTERN)


@tracer.capture_method
def start_cycle(cycle: CycleInput) -> str:
    """Start ``cycle`` as an execution named after its id; returns the execution ARN."""
    machine = get_settings(ApiSettings).state_machine_arn
    if not machine:
        raise PermanentError("STATE_MACHINE_ARN is not set: this API cannot start cycles")
    return executions.start_execution(machine, cycle.cycle_id, cycle.model_dump_json())


def execution_arn_for(cycle_id: str) -> str | None:
    """The execution ARN of a cycle this API started (``api-...``: the execution is named after it)."""
    machine = get_settings(ApiSettings).state_machine_arn
    if not machine or not cycle_id.startswith("api-"):
        return None
    return executions.execution_arn(machine, cycle_id)


@tracer.capture_method
def describe_execution(arn: str) -> tuple[ExecutionStatus | None, dict[str, Any]]:
    """The execution's status and input; ``(None, {})`` when Step Functions does not know it."""
    found = executions.describe_execution(arn)
    if found is None:
        return None, {}
    status = ExecutionStatus(
        execution_arn=found.arn,
        status=found.status,
        started_at=found.started_at,
        stopped_at=found.stopped_at,
        error=found.error,
        cause=str(found.cause)[:MAX_CAUSE] if found.cause else None,
    )
    return status, found.input


def show_cycle(cycle_id: str, rows: CycleRows) -> CycleView | None:
    """The cycle as recorded (``rows``) with its execution's live status; None when neither knows it.

    Raises:
        StepFunctionsUnavailableError: the execution could not be read and nothing is recorded either.
    """
    recorded = rows.cycle or {}
    arn = recorded.get("execution_arn") or next(
        (r["execution_id"] for r in [*rows.decisions, *rows.failures] if r.get("execution_id")), None
    )
    arn = arn or execution_arn_for(cycle_id)
    execution: ExecutionStatus | None = None
    execution_input: dict[str, Any] = {}
    if arn:
        try:
            execution, execution_input = describe_execution(arn)
        except StepFunctionsUnavailableError:
            if not rows.found:
                raise  # nothing else to show: 503, not a misleading 404
            logger.warning("execution status unavailable", extra={"execution_arn": arn})
    if not rows.found and execution is None:
        return None
    return _cycle_view(cycle_id, rows.cycle, rows.decisions, rows.failures, execution, execution_input)


def _cycle_view(
    cycle_id: str,
    recorded: dict[str, Any] | None,
    decisions: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    execution: ExecutionStatus | None,
    execution_input: dict[str, Any],
) -> CycleView:
    outcomes: dict[str, DecisionOutcome | FailureOutcome] = {
        f["asset"]: FailureOutcome(error_class=f["error_class"], message=f["message"])
        for f in failures
        if f["asset"] is not None
    }
    for d in decisions:  # a decision wins over a failure of the same asset (a retried, then decided, asset)
        outcomes[d["asset"]] = DecisionOutcome(
            decision_id=d["id"], action=d["action"], confidence=d["confidence"], reason=d["reason"], stale=d["stale"]
        )
    cycle_failure = next(
        (FailureOutcome(error_class=f["error_class"], message=f["message"]) for f in failures if f["asset"] is None),
        None,
    )
    recorded = recorded or {}
    requested = recorded.get("assets") or execution_input.get("assets") or []
    assets = [a for a in requested if isinstance(a, str)]
    first = decisions[0] if decisions else {}
    ended = recorded.get("status") in _ENDED_UNDECIDED  # what happened to the cycle, whatever its execution says
    return CycleView(
        cycle_id=cycle_id,
        status=recorded["status"] if ended else execution.status if execution else recorded.get("status"),
        reason=recorded.get("reason") or None,
        stage=recorded.get("stage"),
        timeframe=recorded.get("timeframe") or _str_or_none(execution_input.get("timeframe")) or first.get("timeframe"),
        as_of=recorded.get("as_of") or _datetime_or_none(execution_input.get("as_of")) or first.get("as_of"),
        assets=assets,
        started_at=recorded.get("started_at") or (execution.started_at if execution else None),
        finished_at=recorded.get("finished_at") or (execution.stopped_at if execution else None),
        execution_arn=execution.execution_arn if execution else recorded.get("execution_arn"),
        execution=execution,
        outcomes=dict(sorted(outcomes.items())),
        pending_assets=[] if ended else [a for a in assets if a not in outcomes],
        cycle_failure=cycle_failure,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _datetime_or_none(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
