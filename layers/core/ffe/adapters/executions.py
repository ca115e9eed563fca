"""Step Functions: start a DecisionCycle execution, read one back. The one client the API and the cycle lock use.

One client per container, with short timeouts and few retries (an API caller is waiting; the cycle lock holds a
database lock while it asks). Throttling, 5xx answers and connection errors raise
``StepFunctionsUnavailableError`` (a ``TransientError``: worth a retry); any other refusal (e.g. not allowed,
malformed request) is a bug or a misconfiguration and is raised as botocore's ``ClientError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ffe.containers import container_cached
from ffe.domain.errors import TransientError

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

# botocore is imported at the first call, not at import: the API's routes and RecordDecision's records other than
# "Open the cycle" never ask Step Functions (tests/template/test_template.py, bench/bench_cold_start.py --profile).
_CONFIG = {"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 3, "mode": "standard"}}
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable"}
_UNKNOWN = {"ExecutionDoesNotExist", "InvalidArn"}


class StepFunctionsUnavailableError(TransientError):
    """Step Functions could not be reached, or throttled us."""


@dataclass(frozen=True)
class Execution:
    """An execution as Step Functions describes it."""

    arn: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE
    started_at: datetime | None
    stopped_at: datetime | None
    error: str | None
    cause: str | None
    input: dict[str, Any] = field(default_factory=dict)  # the execution's input when it is a JSON object


@container_cached
def client() -> Any:
    """The container's Step Functions client (``ffe.containers.reset`` forgets it, as ``reset`` does)."""
    import boto3
    from botocore.config import Config

    return boto3.client("stepfunctions", config=Config(**_CONFIG))


def reset() -> None:
    """Forget the client (a cold start; a test that switches AWS endpoints)."""
    client.cache_clear()


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution of ``state_machine_arn`` named ``name``."""
    head, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{machine}:{name}"


def start_execution(state_machine_arn: str, name: str, payload: str) -> str:
    """Start an execution named ``name`` with the JSON ``payload`` as its input; returns its ARN.

    Raises:
        StepFunctionsUnavailableError: throttled or unreachable (worth a retry).
        ClientError: any other refusal.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        started = client().start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable_or_bug(exc) from exc
    return str(started["executionArn"])


def describe_execution(arn: str) -> Execution | None:
    """The execution; None when Step Functions does not know it (no such execution, or not an execution ARN).

    Raises:
        StepFunctionsUnavailableError: throttled or unreachable (worth a retry).
        ClientError: any other refusal.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        desc = client().describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _UNKNOWN:
            return None
        raise _unavailable_or_bug(exc) from exc
    except BotoCoreError as exc:
        raise _unavailable_or_bug(exc) from exc
    try:
        given = json.loads(desc.get("input") or "{}")
    except ValueError:
        given = {}
    return Execution(
        arn=str(desc["executionArn"]),
        status=str(desc["status"]),
        started_at=desc.get("startDate"),
        stopped_at=desc.get("stopDate"),
        error=desc.get("error"),
        cause=desc.get("cause"),
        input=given if isinstance(given, dict) else {},
    )


def execution_status(arn: str) -> str | None:
    """The execution's status, for the cycle lock at "Open the cycle"; None when Step Functions has no such execution.

    Raises:
        TransientError: Step Functions could not be asked, or refused to answer (the caller then judges the cycle
            by its age rather than failing the new cycle).
    """
    from botocore.exceptions import ClientError

    try:
        found = describe_execution(arn)
    except ClientError as exc:
        raise TransientError(f"cannot read execution {arn}: {exc}") from exc
    return found.status if found else None


def _unavailable_or_bug(exc: BotoCoreError | ClientError) -> Exception:
    """Throttling, 5xx and connection errors are worth a retry; the rest is a bug or misconfiguration."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        if error.get("Code") not in _THROTTLED and status < 500:
            return exc
    return StepFunctionsUnavailableError(f"Step Functions unavailable: {type(exc).__name__}")
