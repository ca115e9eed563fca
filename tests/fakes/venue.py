"""A venue account and its reservations in memory, for unit tests that run the real risk gate (``ffe.steps.gate``)
without PostgreSQL: implements ``Broker`` (reads only: the gate never places an order) and ``Reservations``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from ffe.domain.models import AssetClass, Bar
from ffe.domain.portfolio import Balance, OrderRequest, OrderResult, PendingOrder, Position, ProductRules
from ffe.domain.ports import Reservation


class MemoryBroker:
    """A cash account: ``cash`` in USD, no positions, no open orders; one lot rule for every product."""

    name = "memory"

    def __init__(self, cash: Decimal = Decimal(100_000), account_id: str = "memory-1") -> None:
        self.cash = cash
        self.account_id = account_id
        self.settled: list[str] = []

    def balance(self) -> Balance:
        return Balance("USD", self.cash, self.cash)

    def positions(self) -> list[Position]:
        return []

    def account(self) -> tuple[Balance, list[Position]]:
        return self.balance(), self.positions()

    def product_rules(self, asset: str, asset_class: AssetClass | None = None) -> ProductRules:
        return ProductRules(asset, min_size=Decimal("0.0001"), size_increment=Decimal("0.00000001"))

    def open_orders(self) -> list[PendingOrder]:
        return []

    def place_order(self, order: OrderRequest) -> OrderResult:
        raise NotImplementedError("the risk gate never places an order")

    def order_status(self, client_order_id: str) -> OrderResult | None:
        return None

    def settle(self, asset: str, bars: Sequence[Bar]) -> list[OrderResult]:
        self.settled.append(asset)
        return []


class MemoryBook:
    """One account's reservations (``MemoryReservations.account``)."""

    def __init__(self, rows: dict[str, Reservation]) -> None:
        self.rows = rows

    def live_for_bar(self, asset: str, bar_time: datetime | None) -> Reservation | None:
        return next((r for r in self.rows.values() if r.live and r.asset == asset and r.bar_time == bar_time), None)

    def get(self, client_order_id: str) -> Reservation | None:
        return self.rows.get(client_order_id)

    def reserved(self) -> list[PendingOrder]:
        return [r.pending() for r in self.rows.values() if r.live]

    def prices(self, client_order_ids: list[str]) -> dict[str, Decimal]:
        return {i: self.rows[i].price for i in client_order_ids if i in self.rows}

    def reserve(self, reservation: Reservation) -> None:
        self.rows.setdefault(reservation.client_order_id, reservation)

    def mark(self, client_order_id: str, status: str, note: str) -> None:
        raise NotImplementedError


class MemoryReservations:
    """Reservations per account, kept for the life of the object (no expiry, no lock: one thread)."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Reservation]] = {}

    @contextmanager
    def account(self, account: str) -> Iterator[MemoryBook]:
        yield MemoryBook(self.accounts.setdefault(account, {}))
