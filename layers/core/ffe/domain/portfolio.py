"""What a broker knows and the risk gate needs: balances, positions, venue product rules, orders (the values;
the ``Broker`` port itself is in ``ffe.domain.ports``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from ffe.domain.models import AssetClass


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Balance:
    """Account value in the account currency; ``available`` is what new orders may use."""

    currency: str
    equity: Decimal
    available: Decimal


@dataclass(frozen=True, slots=True)
class Position:
    asset: str
    quantity: Decimal  # negative = short
    average_price: Decimal


@dataclass(frozen=True, slots=True)
class ProductRules:
    """A venue's order constraints for one product (in base units, e.g. BTC or EUR)."""

    asset: str
    min_size: Decimal
    size_increment: Decimal
    min_notional: Decimal = Decimal(0)


def client_order_id(cycle_id: str, asset: str, bar_time: datetime | None) -> str:
    """The order's idempotency key, deterministic per decision (cycle, asset, bar): the risk gate reserves under
    it and a retried ExecuteOrder sends the venue the same one."""
    key = f"{cycle_id}|{asset}|{bar_time.isoformat() if bar_time else '-'}"
    return "ffe-" + hashlib.sha256(key.encode()).hexdigest()[:28]


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str  # the idempotency key: the venue never fills two orders with the same one
    asset: str
    side: OrderSide
    quantity: Decimal  # base units, already rounded to the product's increment
    asset_class: AssetClass | None = None  # the universe file's class (None: the built-in table's)


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An order on its way to the position: reserved by the risk gate and not yet placed, or placed and not yet
    (fully) filled. It moves no equity yet, but every limit must count it: it may fill."""

    client_order_id: str
    asset: str
    side: OrderSide
    quantity: Decimal  # base units still to fill
    price: Decimal | None = None  # what the gate sized it at, or the venue's limit price; None when unknown


@dataclass(frozen=True, slots=True)
class OrderResult:
    client_order_id: str
    venue_order_id: str | None
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    fee: Decimal
    detail: str = ""
