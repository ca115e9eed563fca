"""Replaying the decision dead-letter queue: records the store refused after every retry.

Each message is the RecordDecision payload the state machine could not write (plus the error that
stopped it). Replaying invokes the RecordDecision function with the payload again; the write is
idempotent, so a message replayed twice still gives one row. A message is deleted only after the
function accepted it, or after it was moved to the poison shelf: a record the function refuses as
malformed (a permanent error, not an outage) can never be written, so it goes to the shelf queue with
the reason instead of blocking the dead-letter queue forever. ``ffe dlq list`` shows both queues.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Fields the state machine adds to a parked record; the record itself is everything else.
_ENVELOPE = ("record_error", "dead_letter_error")


# RecordDecision errors that no later replay can fix: the record itself is refused (ffe.domain.errors).
PERMANENT = {"InvalidInputError", "PermanentError"}
REASON_ATTRIBUTE = "reason"


@dataclass
class ReplayReport:
    replayed: int = 0
    failed: list[str] = field(default_factory=list)  # "message id: error" for records kept in the queue
    shelved: list[str] = field(default_factory=list)  # "message id: error" for records moved to the poison shelf


@dataclass(frozen=True)
class Parked:
    """A record waiting in a queue, with why it is there."""

    message_id: str
    kind: str
    cycle_id: str
    asset: str
    reason: str


def parked(messages: list[dict[str, Any]]) -> list[Parked]:
    """What ``ffe dlq list`` shows of each message (a body that is not even JSON is shown as such)."""
    out = []
    for message in messages:
        try:
            decoded = json.loads(message["Body"])
        except ValueError:
            decoded = None
        body: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        error = body["record_error"] if isinstance(body.get("record_error"), dict) else {}
        attribute = (message.get("MessageAttributes") or {}).get(REASON_ATTRIBUTE, {}).get("StringValue")
        reason = attribute or str(error.get("Error") or "") or ("not a JSON object" if not body else "")
        records = body.get("records") if body.get("kind") == "batch" else None
        batch = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
        asset = _batch_assets(batch) if batch else str(body.get("asset", "-"))[:64]
        cycle = batch[0].get("cycle_id", "-") if batch else body.get("cycle_id", "-")
        out.append(Parked(message["MessageId"], str(body.get("kind", "?")), str(cycle), asset, reason))
    return out


def _batch_assets(records: list[dict[str, Any]]) -> str:
    """A parked batch's assets in the list's asset column: ``20 assets: SYN0000 .. SYN0019``."""
    first, last = str(records[0].get("asset", "?")), str(records[-1].get("asset", "?"))
    return (f"{len(records)} assets: {first} .. {last}" if len(records) > 1 else first)[:64]


def record_payload(body: str) -> dict[str, Any]:
    """The record a message carries, without what the state machine added (ValueError: not a JSON object)."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError(f"the message body is JSON {type(message).__name__}, not a record")
    return {key: value for key, value in message.items() if key not in _ENVELOPE}


def replay(
    sqs: Any,
    lambda_client: Any,
    queue_url: str,
    function_name: str,
    poison_queue_url: str | None = None,
    max_messages: int = 1000,
) -> ReplayReport:
    """Write every parked record through ``function_name``; delete each message once it is stored, or once it is
    on the poison shelf (``poison_queue_url``) because the function refused the record itself."""
    report = ReplayReport()
    seen: set[str] = set()
    while len(seen) < max_messages:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        for again in (m for m in batch if m["MessageId"] in seen):  # a kept record came round: leave it visible
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            error = _write(lambda_client, function_name, message["Body"])
            if error is None:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                report.replayed += 1
                continue
            reason = f"{error.get('errorType')}: {error.get('errorMessage')}"[:1000]
            if poison_queue_url and error.get("errorType") in PERMANENT:  # never writable: off the queue, kept
                attributes = {REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}}
                sqs.send_message(QueueUrl=poison_queue_url, MessageBody=message["Body"], MessageAttributes=attributes)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                report.shelved.append(f"{message['MessageId']}: {reason}")
                continue
            report.failed.append(f"{message['MessageId']}: {reason}")
            # back in the queue at once, for the next replay
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return report


def _write(lambda_client: Any, function_name: str, body: str) -> dict[str, Any] | None:
    """Invoke RecordDecision with the message's record: None once stored, else the function's error payload."""
    try:
        record = record_payload(body)
    except ValueError as exc:  # not even a JSON object: no replay will ever write it
        return {"errorType": "InvalidInputError", "errorMessage": str(exc)}
    response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(record).encode())
    payload: dict[str, Any] = json.loads(response["Payload"].read() or b"{}")
    return payload if response.get("FunctionError") else None


def peek(sqs: Any, queue_url: str) -> list[Parked]:
    """The messages of a queue as ``ffe dlq list`` shows them, left in the queue."""
    return parked(queued(sqs, queue_url))


def queued(sqs: Any, queue_url: str, max_messages: int = 1000) -> list[dict[str, Any]]:
    """Every message of a queue with its attributes, left in the queue (visible again at once)."""
    messages: dict[str, dict[str, Any]] = {}
    while len(messages) < max_messages:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        new = [m for m in batch if m["MessageId"] not in messages]
        if not new:
            break
        messages.update({m["MessageId"]: m for m in new})
    return list(messages.values())
