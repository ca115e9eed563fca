"""The paper broker on a real PostgreSQL: fills at the next bar's open, fees and slippage, a ledger that
matches hand arithmetic, idempotent orders, and state that outlives the broker object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ffe.adapters.paper_broker import PaperBroker
from ffe.domain.errors import InvalidInputError
from ffe.domain.models import Bar
from ffe.domain.portfolio import Balance, OrderRequest, OrderSide, OrderStatus
from ffe.store.migrate import migrate

D = Decimal
T0 = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


def bar(hour: int, open_: float, close: float) -> Bar:
    return Bar(datetime(2019, 6, 15, hour, tzinfo=UTC), open_, max(open_, close), min(open_, close), close, 1.0)


@pytest.fixture
def account(postgres: str, cycle_id: str) -> str:
    with psycopg.connect(postgres, autocommit=True) as conn:
        migrate(conn)
    return f"paper-{cycle_id}"


def test_fills_and_pnl_match_a_hand_computed_ledger(postgres: str, account: str) -> None:
    now = [T0]
    broker = PaperBroker(postgres, account, clock=lambda: now[0], starting_cash=D("10000"))
    # Given a BUY of 0.1 BTC placed at 12:01
    placed = broker.place_order(OrderRequest("buy-1", "BTCUSD", OrderSide.BUY, D("0.1")))
    assert placed.status is OrderStatus.PENDING and broker.balance().available == D("10000")
    # When the 13:00 bar opens at 50,000: fill at 50,000 * 1.0005 = 50,025; fee 0.1 % of 5,002.5 = 5.0025
    [fill] = broker.settle("BTCUSD", [bar(12, 49000, 49500), bar(13, 50000, 50500)])
    assert (fill.status, fill.average_price, fill.fee) == (OrderStatus.FILLED, D("50025.0000"), D("5.00250000000"))
    balance = broker.balance()
    assert balance.available == D("4992.4975")  # 10,000 - 5,002.5 - 5.0025
    assert balance.equity == D("4992.4975") + D("0.1") * D("50500")  # marked at the last close
    # And a SELL of the whole position placed at 14:01 fills at the 15:00 open 51,000 * 0.9995 = 50,974.5
    now[0] = T0 + timedelta(hours=2)
    broker.place_order(OrderRequest("sell-1", "BTCUSD", OrderSide.SELL, D("0.1")))
    broker.settle("BTCUSD", [bar(14, 50500, 50900), bar(15, 51000, 51200)])
    # Then cash = 4,992.4975 + 5,097.45 - 5.09745 = 10,084.85005: a P&L of 84.85005 after costs
    assert broker.balance().available == D("10084.85005")
    assert broker.positions() == []
    broker.close()


def test_a_retried_order_is_placed_once(postgres: str, account: str) -> None:
    broker = PaperBroker(postgres, account, clock=lambda: T0)
    order = OrderRequest("same-id", "ETHUSD", OrderSide.BUY, D("1"))
    first, again = broker.place_order(order), broker.place_order(order)
    assert first == again
    with psycopg.connect(postgres) as conn:
        count = conn.execute("SELECT count(*) FROM paper_orders WHERE client_order_id = 'same-id'").fetchone()
    assert count == (1,)
    broker.close()


def test_portfolio_survives_the_broker_object(postgres: str, account: str) -> None:
    first = PaperBroker(postgres, account, clock=lambda: T0)
    first.place_order(OrderRequest("carry-1", "BTCUSD", OrderSide.BUY, D("0.5")))
    first.settle("BTCUSD", [bar(13, 10000, 10100)])
    first.close()
    # a new container, the next cycle
    later = PaperBroker(postgres, account, clock=lambda: T0 + timedelta(hours=1))
    [position] = later.positions()
    assert (position.asset, position.quantity) == ("BTCUSD", D("0.5"))
    later.close()


def test_unaffordable_fill_is_rejected_not_overdrawn(postgres: str, account: str) -> None:
    broker = PaperBroker(postgres, account, clock=lambda: T0, starting_cash=D("100"))
    broker.place_order(OrderRequest("too-big", "BTCUSD", OrderSide.BUY, D("1")))
    [result] = broker.settle("BTCUSD", [bar(13, 50000, 50000)])
    assert result.status is OrderStatus.REJECTED and "insufficient cash" in result.detail
    assert broker.balance().available == D("100")
    broker.close()


def test_the_account_is_opened_once_per_connection(
    postgres: str, account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every statement the broker sends is recorded
    statements: list[str] = []
    real_connect = psycopg.connect

    def connect(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        conn = real_connect(*args, **kwargs)
        real_execute = conn.execute

        def execute(query: Any, *rest: Any, **options: Any) -> Any:
            statements.append(str(query))
            return real_execute(query, *rest, **options)

        monkeypatch.setattr(conn, "execute", execute)
        return conn

    monkeypatch.setattr(psycopg, "connect", connect)
    broker = PaperBroker(postgres, account, clock=lambda: T0, starting_cash=D("500"))

    def opened() -> int:
        return sum(s.startswith("INSERT INTO paper_accounts") for s in statements)

    # When the positions are read first: one query, and they never touch the account
    assert broker.positions() == []
    assert len(statements) == 1 and opened() == 0
    # Then the first balance opens the account with the starting cash, and later reads only read
    assert broker.balance() == Balance("USD", D("500"), D("500"))
    assert opened() == 1
    before = len(statements)
    assert broker.balance() == Balance("USD", D("500"), D("500"))
    broker.place_order(OrderRequest("once-1", "BTCUSD", OrderSide.BUY, D("0.001")))
    assert len(statements) - before == 2 + 2  # cash and marks; the order and its result
    assert opened() == 1
    # And a re-opened connection checks the account again
    broker.close()
    broker.place_order(OrderRequest("once-2", "BTCUSD", OrderSide.BUY, D("0.001")))
    assert opened() == 2
    assert broker.balance().available == D("500")
    broker.close()


def test_bad_orders_and_accounts_are_refused(postgres: str, account: str) -> None:
    broker = PaperBroker(postgres, account, clock=lambda: T0)
    with pytest.raises(InvalidInputError, match="below the minimum"):
        broker.place_order(OrderRequest("dust", "BTCUSD", OrderSide.BUY, D("0.00001")))
    with pytest.raises(InvalidInputError, match="unknown asset"):
        broker.place_order(OrderRequest("x", "XAUUSD", OrderSide.BUY, D("1")))
    with pytest.raises(InvalidInputError, match="positive number"):
        PaperBroker(postgres, account, clock=lambda: T0, starting_cash=D("NaN"))
    assert broker.order_status("never-placed") is None
    broker.close()


def test_equity_marks_remember_the_day_start_and_the_peak(postgres: str, account: str) -> None:
    from datetime import date

    from ffe.adapters.equity_marks import PostgresEquityMarks

    memory = PostgresEquityMarks(postgres)
    assert memory.marks(account, date(2019, 6, 15), D("100000")) == (D("100000"), D("100000"))
    assert memory.marks(account, date(2019, 6, 15), D("104000")) == (D("100000"), D("104000"))  # peak moves
    assert memory.marks(account, date(2019, 6, 16), D("97000")) == (D("97000"), D("104000"))  # a new day
    memory.close()
