"""Replaying the decision dead-letter queue: records the store refused after every retry.

Each message is the RecordDecision payload the state machine could not write (plus the error that
stopped it). Replaying invokes the RecordDecision function with the payload again; the write is
idempotent, so a message replayed twice still gives one row. A message is deleted only after the
function accepted it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Fields the state machine adds to a parked record; the record itself is everything else.
_ENVELOPE = ("record_error", "dead_letter_error")


@dataclass
class ReplayReport:
    replayed: int = 0
    failed: list[str] = field(default_factory=list)  # "message id: error" for records kept in the queue


def record_payload(body: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(body)
    return {key: value for key, value in message.items() if key not in _ENVELOPE}


def replay(sqs: Any, lambda_client: Any, queue_url: str, function_name: str, max_messages: int = 1000) -> ReplayReport:
    """Write every parked record through ``function_name``; delete each message once it is stored."""
    report = ReplayReport()
    seen: set[str] = set()
    while len(seen) < max_messages:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=60).get("Messages", [])  # fmt: skip
        fresh = [m for m in batch if m["MessageId"] not in seen]
        for again in (m for m in batch if m["MessageId"] in seen):  # a kept record came round: leave it visible
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            response = lambda_client.invoke(
                FunctionName=function_name, Payload=json.dumps(record_payload(message["Body"])).encode()
            )
            payload = json.loads(response["Payload"].read() or b"{}")
            if response.get("FunctionError"):
                report.failed.append(
                    f"{message['MessageId']}: {payload.get('errorType')}: {payload.get('errorMessage')}"
                )
                # back in the queue at once, for the next replay
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            report.replayed += 1
    return report
