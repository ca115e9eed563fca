"""The deploy-time migration: a CloudFormation custom resource that applies the SQL migrations.

CloudFormation sends Create/Update/Delete with a pre-signed ``ResponseURL``; the function must PUT
a JSON verdict there or the stack waits for an hour. Create and Update migrate; Delete does nothing
(the data outlives the stack).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

PHYSICAL_ID = "ffe-schema"


def handle_custom_resource(event: dict[str, Any], migrate: Callable[[], list[str]], log_stream: str) -> dict[str, Any]:
    """Run ``migrate`` for Create/Update, then report to CloudFormation; never leaves the stack hanging."""
    response: dict[str, Any] = {
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_ID),
        "Data": {},
    }
    try:
        applied = migrate() if event.get("RequestType") in ("Create", "Update") else []
        response.update(
            Status="SUCCESS",
            Data={"Applied": ",".join(applied) or "none"},
            Reason=f"applied: {', '.join(applied) or 'nothing (up to date)'}",
        )
    except Exception as exc:  # any failure must reach CloudFormation, with the log stream
        response.update(Status="FAILED", Reason=f"{type(exc).__name__}: {exc} (see log stream {log_stream})"[:900])
    send(event["ResponseURL"], response)
    return response


def send(url: str, response: dict[str, Any]) -> None:
    body = json.dumps(response).encode()
    request = urllib.request.Request(  # noqa: S310  # the pre-signed https URL CloudFormation gave us
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()
