"""The paper broker: the default execution venue in every stage until one explicitly goes live.

Orders are accepted at once and fill at the open of the first bar that opens at or after the order
(the next bar), with configurable fees and slippage (the rule is ``ffe.domain.fills``, which the
backtester shares). Cash, positions and orders live in PostgreSQL, so the portfolio carries over from
cycle to cycle and from container to container. Idempotent by client order id: a retried ExecuteOrder
finds its order instead of placing a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ffe.adapters.database import DEFAULT_STATEMENT_TIMEOUT_MS, Conninfo, Database
from ffe.domain.errors import InvalidInputError
from ffe.domain.fills import FEE_RATE, SLIPPAGE, STARTING_CASH, Fill, Rejection, apply_fill, paper_rules
from ffe.domain.models import AssetClass, Bar
from ffe.domain.portfolio import (
    Balance,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    PendingOrder,
    Position,
    ProductRules,
)
from ffe.domain.universe import class_of
from ffe.observability import emit

D = Decimal


class PaperBroker:
    name = "paper"

    def __init__(
        self,
        conninfo: Conninfo,
        account_id: str,
        clock: Callable[[], datetime],
        starting_cash: Decimal = STARTING_CASH,
        currency: str = "USD",
        fee_rate: Decimal = FEE_RATE,
        slippage: Decimal = SLIPPAGE,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    ) -> None:
        if not starting_cash.is_finite() or starting_cash <= 0:
            raise InvalidInputError(f"paper starting cash must be a positive number, got {starting_cash}")
        self.account_id = account_id
        self._clock = clock
        self._starting_cash = starting_cash
        self._currency = currency
        self.fee_rate = fee_rate
        self.slippage = slippage
        self._account_opened = False  # on this connection: reset whenever a new one opens
        self.database = Database(
            conninfo,
            row_factory=dict_row,
            name="paper broker's database",
            statement_timeout_ms=statement_timeout_ms,
            on_connect=self._connected,
        )

    def set_clock(self, clock: Callable[[], datetime]) -> None:
        """Orders are stamped by this clock (the cycle's as_of: each cycle's warm container resets it)."""
        self._clock = clock

    # --- Broker protocol ------------------------------------------------------------------------------

    def balance(self) -> Balance:
        with self._db() as conn:
            self._open_account(conn)
            cash = self._cash(conn)
            marked = conn.execute(
                "SELECT coalesce(sum(quantity * mark_price), 0) AS value FROM paper_positions WHERE account_id = %s",
                (self.account_id,),
            ).fetchone()
        value = D(marked["value"]) if marked else D(0)
        return Balance(self._currency, equity=cash + value, available=cash)

    def positions(self) -> list[Position]:
        with self._db() as conn:
            rows = conn.execute(
                "SELECT asset, quantity, average_price FROM paper_positions WHERE account_id = %s AND quantity <> 0"
                " ORDER BY asset",
                (self.account_id,),
            ).fetchall()
        return [Position(r["asset"], D(r["quantity"]), D(r["average_price"])) for r in rows]

    def account(self) -> tuple[Balance, list[Position]]:
        return self.balance(), self.positions()

    def product_rules(self, asset: str, asset_class: AssetClass | None = None) -> ProductRules:
        return paper_rules(asset, class_of(asset, asset_class))

    def place_order(self, order: OrderRequest) -> OrderResult:
        rules = self.product_rules(order.asset, order.asset_class)
        if order.quantity < rules.min_size or order.quantity % rules.size_increment:
            raise InvalidInputError(
                f"paper order of {order.quantity} {order.asset} is below the minimum "
                f"{rules.min_size} or off the increment {rules.size_increment}"
            )
        with self._db() as conn:
            self._open_account(conn)  # the order's account must exist
            conn.execute(
                "INSERT INTO paper_orders (client_order_id, account_id, asset, side, quantity, placed_at, status)"
                " VALUES (%s, %s, %s, %s, %s, %s, 'PENDING') ON CONFLICT (client_order_id) DO NOTHING",
                (order.client_order_id, self.account_id, order.asset, order.side.value, order.quantity, self._clock()),
            )
            return self._result(conn, order.client_order_id)  # the first placement's, on a retry

    def order_status(self, client_order_id: str) -> OrderResult | None:
        with self._db() as conn:
            row = conn.execute("SELECT 1 FROM paper_orders WHERE client_order_id = %s", (client_order_id,)).fetchone()
            return self._result(conn, client_order_id) if row else None

    def open_orders(self) -> list[PendingOrder]:
        """The account's orders waiting for their next bar (paper orders carry no price of their own)."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT client_order_id, asset, side, quantity FROM paper_orders"
                " WHERE account_id = %s AND status = 'PENDING' ORDER BY placed_at, client_order_id",
                (self.account_id,),
            ).fetchall()
        return [PendingOrder(r["client_order_id"], r["asset"], OrderSide(r["side"]), D(r["quantity"])) for r in rows]

    def cancel(self, client_order_id: str) -> OrderResult | None:
        """Cancel an order that has not filled yet; a filled or rejected one is left as it is. None: no such order."""
        with self._db() as conn:
            conn.execute(
                "UPDATE paper_orders SET status = 'CANCELLED', detail = 'cancelled before it filled'"
                " WHERE client_order_id = %s AND account_id = %s AND status = 'PENDING'",
                (client_order_id, self.account_id),
            )
            row = conn.execute("SELECT 1 FROM paper_orders WHERE client_order_id = %s", (client_order_id,)).fetchone()
            return self._result(conn, client_order_id) if row else None

    # --- the market moves -----------------------------------------------------------------------------

    def settle(self, asset: str, bars: Sequence[Bar]) -> list[OrderResult]:
        """Fill the asset's pending orders at the open of their next bar; mark its position to the last close."""
        if not bars:
            return []
        filled: list[OrderResult] = []
        closing: list[Fill] = []
        with self._db() as conn, conn.transaction():
            pending = conn.execute(
                "SELECT client_order_id, side, quantity, placed_at FROM paper_orders"
                " WHERE account_id = %s AND asset = %s AND status = 'PENDING' ORDER BY placed_at FOR UPDATE",
                (self.account_id, asset),
            ).fetchall()
            for order in pending:
                bar = next((b for b in bars if b.time >= order["placed_at"]), None)
                if bar is not None:
                    outcome = self._fill(conn, asset, order, bar)
                    if isinstance(outcome, Fill) and outcome.closed:
                        closing.append(outcome)
                    filled.append(self._result(conn, order["client_order_id"]))
            conn.execute(
                "UPDATE paper_positions SET mark_price = %s WHERE account_id = %s AND asset = %s",
                (D(repr(bars[-1].close)), self.account_id, asset),
            )
        for fill in closing:  # after the commit: fills that happened
            where = {"asset": asset, "closed": str(fill.closed)}
            emit("trade_pnl", float(fill.realised), where, account=self.account_id)
        return filled

    def _fill(
        self, conn: psycopg.Connection[dict[str, Any]], asset: str, order: dict[str, Any], bar: Bar
    ) -> Fill | Rejection:
        held = conn.execute(
            "SELECT quantity, average_price FROM paper_positions WHERE account_id = %s AND asset = %s FOR UPDATE",
            (self.account_id, asset),
        ).fetchone()
        old_qty, old_avg = (D(held["quantity"]), D(held["average_price"])) if held else (D(0), D(0))
        outcome = apply_fill(
            OrderSide(order["side"]),
            D(order["quantity"]),
            D(repr(bar.open)),
            self._cash(conn),
            old_qty,
            old_avg,
            self.fee_rate,
            self.slippage,
        )
        if isinstance(outcome, Rejection):
            conn.execute(
                "UPDATE paper_orders SET status = 'REJECTED', detail = %s WHERE client_order_id = %s",
                (outcome.detail, order["client_order_id"]),
            )
            return outcome
        conn.execute(
            "INSERT INTO paper_positions (account_id, asset, quantity, average_price, mark_price)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id, asset)"
            " DO UPDATE SET quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price,"
            " mark_price = EXCLUDED.mark_price",
            (self.account_id, asset, outcome.quantity, outcome.average_price, outcome.price),
        )
        conn.execute("UPDATE paper_accounts SET cash = cash - %s WHERE id = %s", (outcome.cash_out, self.account_id))
        conn.execute(
            "UPDATE paper_orders SET status = 'FILLED', fill_price = %s, fee = %s, filled_bar_time = %s"
            " WHERE client_order_id = %s",
            (outcome.price, outcome.fee, bar.time, order["client_order_id"]),
        )
        return outcome

    # --- plumbing -------------------------------------------------------------------------------------

    def _open_account(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Open the account with the starting cash on first use; checked once per connection."""
        if not self._account_opened:
            conn.execute(
                "INSERT INTO paper_accounts (id, currency, cash) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (self.account_id, self._currency, self._starting_cash),
            )
            self._account_opened = True

    def _cash(self, conn: psycopg.Connection[dict[str, Any]]) -> Decimal:
        """The account's cash (a filled order's account exists: its order references it)."""
        row = conn.execute("SELECT cash FROM paper_accounts WHERE id = %s", (self.account_id,)).fetchone()
        return D(row["cash"]) if row else D(0)

    def _result(self, conn: psycopg.Connection[dict[str, Any]], client_order_id: str) -> OrderResult:
        row = conn.execute("SELECT * FROM paper_orders WHERE client_order_id = %s", (client_order_id,)).fetchone()
        if row is None:
            raise InvalidInputError(f"no paper order {client_order_id!r}")
        filled = row["status"] == "FILLED"
        return OrderResult(
            client_order_id=client_order_id,
            venue_order_id=f"paper-{client_order_id}",
            status=OrderStatus(row["status"]),
            filled_quantity=D(row["quantity"]) if filled else D(0),
            average_price=D(row["fill_price"]) if filled else None,
            fee=D(row["fee"]),
            detail=row["detail"],
        )

    def _db(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        """The broker's one connection (``ffe.adapters.database``), used by one thread at a time."""
        return self.database.connection()

    def _connected(self, conn: psycopg.Connection) -> None:
        self._account_opened = False

    def close(self) -> None:
        self.database.close()
