"""The shared circuit breakers as an operator sees them: every one listed, and one closed by hand.

The breakers live in the stage's breaker table (``ffe-<stage>-circuit-breakers``, one item per breaker, written
by ``ffe.adapters.breaker.DynamoDBBreakerStorage``): one per market-data provider and one for the stage's
inference endpoint (``inference:ffe-<stage>-inference``). A breaker that has never failed has no item yet and
is listed as closed. ``ffe breakers`` and the API's ``GET /health`` both read them through ``shared_breakers``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker
from pydantic import Field

from ffe.adapters.rate_limit import ITEM_PREFIX as RATE_ITEM_PREFIX
from ffe.contracts import Contract
from ffe.observability import logger
from ffe.settings import InferenceSettings, ProviderSettings
from ffe.steps.preflight import KNOWN_PROVIDERS

INFERENCE_PREFIX = "inference:"


class UnknownBreakerError(LookupError):
    """A name that is no shared breaker of the stage."""


class BreakerStatus(Contract):
    name: str = Field(description="a market-data provider, or inference:<endpoint>")
    state: str = Field(description="closed, open or half-open")
    failures: int = Field(description="consecutive failures counted towards opening")
    opened_at: datetime | None = Field(description="when it last opened; null when it never did (or was reset)")
    next_half_open: datetime | None = Field(
        description="while open: opened_at + its reset timeout, after which the next call is let through as a trial"
    )
    reset_by: str | None = Field(default=None, description="who last closed it by hand (`ffe breakers reset`)")
    reset_why: str | None = Field(default=None, description="the reason they gave")
    reset_at: datetime | None = Field(default=None, description="when they did")


def breaker_names(stage: str) -> list[str]:
    """Every shared breaker a stage has: the providers', then its inference endpoint's."""
    return [*KNOWN_PROVIDERS, f"{INFERENCE_PREFIX}ffe-{stage}-inference"]


def shared_breakers(table: Any, stage: str) -> list[BreakerStatus]:
    """Every breaker of the stage, and any other item the table holds, by name (one consistent scan)."""
    items = {str(item["name"]): item for item in _scan(table)}
    names = breaker_names(stage)
    names += sorted(n for n in set(items) - set(names) if not n.startswith(RATE_ITEM_PREFIX))  # token buckets
    return [_status(name, items.get(name, {})) for name in names]


def reset_breaker(table: Any, stage: str, name: str, who: str, why: str) -> tuple[BreakerStatus, BreakerStatus]:
    """Close ``name`` now (state closed, counters 0), recording who and why on its item and in a log line.

    Every container reads the state afresh on its next call, so the next call goes through. Returns the
    breaker before and after.
    """
    before = {b.name: b for b in shared_breakers(table, stage)}.get(name)
    if before is None:
        raise UnknownBreakerError(f"no breaker {name!r}; the stage has {', '.join(breaker_names(stage))}")
    now = datetime.now(UTC)
    table.update_item(
        Key={"name": name},
        UpdateExpression="SET #s = :closed, failures = :zero, successes = :zero, reset_by = :who, reset_why = :why, "
        "reset_at = :now REMOVE opened_at",
        ExpressionAttributeNames={"#s": "state"},  # a reserved word in DynamoDB expressions
        ExpressionAttributeValues={
            ":closed": pybreaker.STATE_CLOSED,
            ":zero": 0,
            ":who": who,
            ":why": why,
            ":now": now.isoformat(),
        },
    )
    after = _status(name, table.get_item(Key={"name": name}, ConsistentRead=True).get("Item", {}))
    logger.warning(
        "circuit breaker reset by hand",
        extra={
            "breaker": name,
            "from": before.state,
            "failures_before": before.failures,
            "reset_by": who,
            "reset_why": why,
        },
    )
    return before, after


def _scan(table: Any) -> list[dict[str, Any]]:
    response = table.scan(ConsistentRead=True)
    items: list[dict[str, Any]] = response.get("Items", [])
    while "LastEvaluatedKey" in response:  # a handful of items in practice; paged all the same
        response = table.scan(ConsistentRead=True, ExclusiveStartKey=response["LastEvaluatedKey"])
        items += response.get("Items", [])
    return items


def _status(name: str, item: dict[str, Any]) -> BreakerStatus:
    state = str(item.get("state", pybreaker.STATE_CLOSED))
    opened_at = _time(item.get("opened_at"))
    half_open = None
    if state == pybreaker.STATE_OPEN and opened_at is not None:
        half_open = opened_at + timedelta(seconds=float(item.get("reset_timeout_s") or _default_timeout(name)))
    return BreakerStatus(
        name=name,
        state=state,
        failures=int(item.get("failures", 0)),
        opened_at=opened_at,
        next_half_open=half_open,
        reset_by=item.get("reset_by"),
        reset_why=item.get("reset_why"),
        reset_at=_time(item.get("reset_at")),
    )


def _default_timeout(name: str) -> float:
    """An item opened before the breaker recorded its timeout: the settings' default (the template sets none)."""
    settings = InferenceSettings if name.startswith(INFERENCE_PREFIX) else ProviderSettings
    value = settings.model_fields["breaker_reset_timeout_s"].default
    return float(value)


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


__all__ = ["BreakerStatus", "UnknownBreakerError", "breaker_names", "reset_breaker", "shared_breakers"]
