"""The local runtime's shared circuit breakers, kept between commands in ``<state dir>/breakers.json``.

moto's DynamoDB lives only as long as one command, so the breaker table's items are saved to the file when a
command's stack stops and put back when the next one starts (``LocalCloud`` does both). ``ffe breakers`` offline
opens the same items in a moto table of their own (``local_breaker_table``), so it reads and resets them through
the very code that serves a deployed stage. A command saves only the items it changed, merged into the file as it
is then, under a lock: a reset made while a run is going is not overwritten by the run's stale copy.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from ffe.local.errors import LocalError

LOCAL_STAGE = "dev"  # the stage LocalCloud deploys
REGION = "us-east-1"

Snapshot = dict[str, dict[str, Any]]  # breaker name -> its item, JSON-able


def table_name(stage: str = LOCAL_STAGE) -> str:
    return f"ffe-{stage}-circuit-breakers"


def restore(table: Any, path: Path) -> Snapshot:
    """Put the file's items into ``table``; what was put (to compare with at ``save``)."""
    saved = read(path)
    for item in saved.values():
        table.put_item(Item={k: _number(v) for k, v in item.items()})
    return saved


def save(table: Any, path: Path, restored: Snapshot) -> None:
    """Write the items this command changed (against ``restored``) into the file as it is now."""
    now = {str(item["name"]): {k: _plain(v) for k, v in item.items()} for item in table.scan().get("Items", [])}
    changed = {name: item for name, item in now.items() if restored.get(name) != item}
    if not changed:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {**read(path), **changed}
        staged = path.with_suffix(".tmp")
        staged.write_text(json.dumps(merged, indent=1, sort_keys=True))
        staged.replace(path)  # a command restoring meanwhile reads the old file or the new, never half


def read(path: Path) -> Snapshot:
    if not path.exists():
        return {}
    hint = f"{path} is not the breakers' JSON: delete it to start with every breaker closed"
    try:
        saved = json.loads(path.read_text())
    except ValueError as exc:
        raise LocalError(f"{hint} ({exc})") from None
    if not isinstance(saved, dict) or not all(isinstance(v, dict) and "name" in v for v in saved.values()):
        raise LocalError(hint)
    return saved


@contextmanager
def local_breaker_table(path: Path) -> Iterator[Any]:
    """The local breakers in a moto table of their own, for ``ffe breakers``; changes saved back on the way out."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(
            TableName=table_name(),
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        )
        restored = restore(table, path)
        yield table
        save(table, path, restored)


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _number(value: Any) -> Any:
    """JSON numbers as the Decimals boto3 wants."""
    return Decimal(str(value)) if isinstance(value, float) else value
