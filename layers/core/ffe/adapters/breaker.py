"""Circuit breakers per provider (pybreaker), their state shared across Lambda containers in DynamoDB.

pybreaker runs the CLOSED -> OPEN -> HALF_OPEN state machine and its thread safety; this module only
stores that state in one DynamoDB item per breaker, so every warm container sees the same breaker,
and reports each transition as a log line and a metric.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pybreaker

from ffe.domain.errors import InvalidInputError
from ffe.observability import emit, logger


class DynamoDBBreakerStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker state in a DynamoDB item ``{name, state, failures, successes, opened_at, reset_timeout_s}``.

    Counters use atomic ``ADD`` updates; reads are strongly consistent, one per call: a healthy call costs
    one read and no write, and a breaker opened by one container is open for every other from its next
    call on. ``reset_timeout_s`` (set by ``make_breaker``) is written with ``opened_at`` when the breaker
    opens, so ``ffe breakers`` can tell when it half-opens. ``ffe.breakers.reset_breaker`` closes an item
    by hand (``reset_by``, ``reset_why``, ``reset_at``).
    """

    def __init__(self, table: Any, name: str, reset_timeout_s: float | None = None) -> None:
        super().__init__(name)
        self._table = table
        self._key = {"name": name}
        self._item: dict[str, Any] | None = None
        self.reset_timeout_s = reset_timeout_s

    def _get(self, attribute: str, default: Any) -> Any:
        if self._item is None:
            self._item = self._table.get_item(Key=self._key, ConsistentRead=True).get("Item", {})
        return self._item.get(attribute, default)

    def _set(self, attribute: str, value: Any) -> None:
        self._table.update_item(
            Key=self._key,
            UpdateExpression="SET #a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": value},
        )
        self._item = None

    def _add(self, attribute: str, delta: int) -> None:
        self._table.update_item(
            Key=self._key,
            UpdateExpression="ADD #a :d",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":d": delta},
        )
        self._item = None

    @property
    def state(self) -> str:
        # pybreaker reads the state first in every call: read the shared item afresh here, and let the
        # counter and opened_at reads of the same call use that snapshot (every write drops it).
        self._item = None
        return str(self._get("state", pybreaker.STATE_CLOSED))

    @state.setter
    def state(self, state: str) -> None:
        self._set("state", state)

    def increment_counter(self) -> None:
        self._add("failures", 1)

    def reset_counter(self) -> None:
        if self._get("failures", 0):  # every success resets: skip the write when there is nothing to reset
            self._set("failures", 0)

    def increment_success_counter(self) -> None:
        self._add("successes", 1)

    def reset_success_counter(self) -> None:
        if self._get("successes", 0):
            self._set("successes", 0)

    @property
    def counter(self) -> int:
        return int(self._get("failures", 0))

    @property
    def success_counter(self) -> int:
        return int(self._get("successes", 0))

    @property
    def opened_at(self) -> datetime | None:
        value = self._get("opened_at", None)
        return None if value is None else datetime.fromisoformat(value)

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        if self.reset_timeout_s is None:
            self._set("opened_at", when.astimezone(UTC).isoformat())
            return
        self._table.update_item(  # one write: when it opened and how long it stays open
            Key=self._key,
            UpdateExpression="SET opened_at = :o, reset_timeout_s = :t",
            ExpressionAttributeValues={
                ":o": when.astimezone(UTC).isoformat(),
                ":t": Decimal(str(self.reset_timeout_s)),  # DynamoDB numbers are Decimals, never floats
            },
        )
        self._item = None


class TransitionReporter(pybreaker.CircuitBreakerListener):
    """Every state change becomes a structured log line and the ``breaker_transitions`` metric."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old, new = getattr(old_state, "name", str(old_state)), getattr(new_state, "name", str(new_state))
        logger.warning("circuit breaker transition", extra={"breaker": cb.name, "from": old, "to": new})
        # pybreaker says "half-open"; the dimension says half_open (open, half_open, closed)
        emit("breaker_transitions", 1, {"from_state": old}, breaker=str(cb.name), to_state=new.replace("-", "_"))


def _not_the_providers_fault(exc: BaseException) -> bool:
    """A request the provider rightly refused (unknown symbol, bad parameter) says nothing about its health."""
    return isinstance(exc, InvalidInputError) and exc.context.get("http_status") in (400, 404)


def make_breaker(
    name: str,
    storage: pybreaker.CircuitBreakerStorage | None = None,
    fail_max: int = 5,
    reset_timeout_s: float = 60.0,
) -> pybreaker.CircuitBreaker:
    """A breaker that opens after ``fail_max`` consecutive failures and half-opens after the cool-down."""
    if isinstance(storage, DynamoDBBreakerStorage):
        storage.reset_timeout_s = reset_timeout_s  # recorded when it opens: when it half-opens, for `ffe breakers`
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout_s,
        name=name,
        state_storage=storage or pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED),
        listeners=[TransitionReporter()],
        exclude=[_not_the_providers_fault],
        throw_new_error_on_trip=False,  # the provider's own classified error is what the route records
    )


BreakerFactory = Callable[[str], pybreaker.CircuitBreaker]


class Cooldowns:
    """Retry-After honoured across containers: a rate-limited provider is skipped until the time it gave.

    Kept as ``rate_limited_until`` on the provider's breaker item when a table is configured.
    """

    def __init__(self, table: Any | None = None) -> None:
        self._table = table
        self._memory: dict[str, datetime] = {}

    def until(self, name: str) -> datetime | None:
        if self._table is None:
            return self._memory.get(name)
        item = self._table.get_item(Key={"name": name}, ConsistentRead=True).get("Item", {})
        value = item.get("rate_limited_until")
        return None if value is None else datetime.fromisoformat(value)

    def hold(self, name: str, until: datetime) -> None:
        if self._table is None:
            self._memory[name] = until
            return
        self._table.update_item(
            Key={"name": name},
            UpdateExpression="SET rate_limited_until = :u",
            ExpressionAttributeValues={":u": until.astimezone(UTC).isoformat()},
        )


def dynamodb_breakers(table: Any, fail_max: int, reset_timeout_s: float) -> BreakerFactory:
    """Breakers by provider name, each backed by its item in ``table`` (built once per name per container)."""
    built: dict[str, pybreaker.CircuitBreaker] = {}

    def breaker(name: str) -> pybreaker.CircuitBreaker:
        if name not in built:
            built[name] = make_breaker(name, DynamoDBBreakerStorage(table, name), fail_max, reset_timeout_s)
        return built[name]

    return breaker
