"""``ffe preflight --stage S``: the deployed stage's own pre-flight, run by invoking its Preflight function.

The function (``functions/preflight``, ``ffe-<stage>-preflight``) checks every provider and broker the stage has
secrets for, from inside the stage (its network, its IAM role, its secrets), and returns the report that
``ffe preflight`` prints locally.
"""

from __future__ import annotations

import json
from typing import Any

from ffe.local.errors import LocalError


def function_name(stage: str) -> str:
    return f"ffe-{stage}-preflight"  # template.yaml: PreflightFunction's FunctionName


def stage_preflight(stage: str, region: str | None, client: Any = None) -> dict[str, Any]:
    """The report the stage's Preflight function returns (a synchronous invoke)."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = function_name(stage)
    try:
        if client is None:
            import boto3

            client = boto3.Session(region_name=region).client("lambda")
        response = client.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=b"{}")
        payload = json.loads(response["Payload"].read() or b"null")
    except (BotoCoreError, ClientError) as exc:  # credentials, region, a stage that is not deployed
        raise LocalError(f"stage {stage!r} in AWS: {exc}") from None
    except ValueError:
        raise LocalError(f"{name} answered something that is not JSON") from None
    if response.get("FunctionError"):
        error = payload if isinstance(payload, dict) else {}
        raise LocalError(
            f"{name} failed: {error.get('errorType', 'error')}: {error.get('errorMessage', '')} "
            f"(its log group: /aws/lambda/{name})"
        )
    if not isinstance(payload, dict) or "providers" not in payload or "healthy" not in payload:
        raise LocalError(f"{name} answered without a pre-flight report")
    return payload
