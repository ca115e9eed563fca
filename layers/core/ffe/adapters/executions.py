"""Step Functions, asked whether an execution still runs (the cycle lock at "Open the cycle")."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ffe.domain.errors import TransientError

_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})


def execution_status(execution_arn: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None when Step Functions has no such execution.

    Raises:
        TransientError: Step Functions could not be asked (the caller then judges by the cycle's age).
    """
    client = boto3.client("stepfunctions", config=_CONFIG)
    try:
        return str(client.describe_execution(executionArn=execution_arn)["status"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
            return None
        raise TransientError(f"cannot read execution {execution_arn}: {exc}") from exc
    except BotoCoreError as exc:
        raise TransientError(f"cannot read execution {execution_arn}: {exc}") from exc
