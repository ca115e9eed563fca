"""Provider rate limits shared by every Lambda container: a token bucket per provider in DynamoDB.

Each limit ("5 calls per 60 s") is a token bucket of ``capacity`` tokens refilled at ``capacity / period``
tokens a second, stored as GCRA (the generic cell rate algorithm, the token bucket written as one timestamp):
the item ``rate:<provider>:<period>s`` in the circuit-breaker table keeps ``tat``, the theoretical arrival time
of the next call. A take at ``now`` is allowed while ``max(tat, now) <= now + (capacity - 1) * interval`` and
moves ``tat`` one ``interval`` on, in ONE conditional UpdateItem (the refill is computed from the stored
timestamp, nothing else is stored). A take that loses a race reads the winner's ``tat`` from the refusal
(``ReturnValuesOnConditionCheckFailure``) and tries again. Over any window of ``w`` seconds no more than
``capacity + w / interval`` takes succeed (tests/integration/test_rate_limit.py holds that over interleavings).

``RoutedProvider`` consults the bar cache first and takes a token only when it must call the provider.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ffe.domain.errors import RateLimitedError

# The providers' documented limits (docs/market-data.md#rate-limits): Alpha Vantage's free key 5/min and 25/day
# (a premium key sets RATE_LIMITS), Oanda v20 about 100 requests/s, Coinbase Exchange public endpoints 10/s.
DEFAULT_RATE_LIMITS = "alpha_vantage=5/60s+25/86400s,oanda=100/1s,coinbase=10/1s"
ITEM_PREFIX = "rate:"  # the buckets' items in the breaker table (``ffe breakers`` leaves them out)
_LIMIT = re.compile(r"^(\d+)/(\d+(?:\.\d+)?)s$")


@dataclass(frozen=True)
class Limit:
    capacity: int
    period_s: float

    @property
    def interval_s(self) -> float:
        return self.period_s / self.capacity

    def __str__(self) -> str:
        return f"{self.capacity}/{self.period_s:g}s"


def parse_rate_limits(spec: str) -> dict[str, tuple[Limit, ...]]:
    """``"alpha_vantage=5/60s+25/86400s,coinbase=10/1s"`` -> the limits per provider (all must hold).

    Raises:
        ValueError: naming the part that is not ``provider=N/Ss[+N/Ss]``.
    """
    limits: dict[str, tuple[Limit, ...]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rest = part.partition("=")
        parsed = []
        for one in rest.split("+"):
            match = _LIMIT.match(one.strip())
            if not name.strip() or match is None or int(match[1]) < 1 or float(match[2]) <= 0:
                raise ValueError(f"rate limit {part!r} is not provider=N/Ss[+N/Ss] with N >= 1, S > 0")
            parsed.append(Limit(int(match[1]), float(match[2])))
        limits[name.strip()] = tuple(parsed)
    return limits


class Bucket:
    """One limit of one provider: ``take()`` is True when a token was taken, else the seconds until one is due."""

    def __init__(self, table: Any | None, provider: str, limit: Limit, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self.provider = provider
        self.limit = limit
        self._key = {"name": f"{ITEM_PREFIX}{provider}:{limit.period_s:g}s"}
        self._clock = clock
        self._tat: float | None = None  # the last tat seen: which of the two updates to try first

    def take(self) -> float:
        """0.0 when a token was taken; otherwise how many seconds until the next token is due."""
        interval = self.limit.interval_s
        for _ in range(8):  # each lost race reads the winner's tat; 8 rounds is far past any real contention
            now = self._clock()
            ceiling = now + (self.limit.capacity - 1) * interval
            tat = self._tat
            if tat is not None and tat > ceiling:
                return tat - ceiling
            idle = tat is None or tat <= now
            won, stored = self._update(now, ceiling, interval, idle)
            if won:
                return 0.0
            self._tat = stored
        return interval

    def _update(self, now: float, ceiling: float, interval: float, idle: bool) -> tuple[bool, float | None]:
        if self._table is None:  # no table configured: a bucket per container
            tat = self._tat
            if tat is not None and tat > ceiling:
                return False, tat
            self._tat = max(tat or now, now) + interval
            return True, self._tat
        from botocore.exceptions import ClientError

        values = {":now": _num(now), ":i": _num(interval)}
        if idle:  # the bucket is full: the next call is due one interval from now
            update, condition = "SET tat = :now + :i", "attribute_not_exists(tat) OR tat <= :now"
        else:  # tokens are being spent: the next call is due one interval after the last one
            update, condition = "SET tat = tat + :i", "tat > :now AND tat <= :ceiling"
            values[":ceiling"] = _num(ceiling)
        try:
            answer = self._table.update_item(
                Key=self._key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item", {}).get("tat")
            stored = float(old["N"]) if isinstance(old, dict) else None if old is None else float(old)
            return False, stored
        self._tat = float(answer["Attributes"]["tat"])
        return True, self._tat


class RateLimiter:
    """Every provider's buckets; ``acquire(provider)`` waits up to ``max_wait_s`` for a token of each limit.

    Raises ``RateLimitedError`` naming the provider and the limit when none is due within the wait.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[Limit, ...]],
        table: Any | None = None,
        max_wait_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._buckets = {name: [Bucket(table, name, lim, clock) for lim in lims] for name, lims in limits.items()}
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep

    def acquire(self, provider: str) -> None:
        deadline = self._clock() + self._max_wait_s
        # the short limit first: a refusal there wastes no token of the scarcer (daily) one
        for bucket in sorted(self._buckets.get(provider, ()), key=lambda b: b.limit.period_s):
            while (wait := bucket.take()) > 0:
                if self._clock() + wait > deadline:
                    raise RateLimitedError(
                        f"{provider} rate limit {bucket.limit} reached (shared token bucket): "
                        f"next token in {wait:.1f}s",
                        retry_after_seconds=max(1, math.ceil(wait)),
                        provider=provider,
                    )
                self._sleep(wait)


def _num(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")  # DynamoDB numbers are Decimals, never floats
