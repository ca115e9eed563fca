"""GateRisk's reads of a live venue: its open orders and the account once per decision (Coinbase over its fake,
reservations on the real database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

from ffe.contracts import GateRiskInput
from ffe.domain.ports import Reservations
from ffe.domain.risk import RiskLimits
from ffe.steps.gate import gate_risk
from tests import gate_inputs
from tests.fakes.coinbase_brokerage_server import API, FakeCoinbaseBrokerage, broker_for
from tests.gate_inputs import replay_bars

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


def gate_input() -> GateRiskInput:
    return gate_inputs.gate_input("gate-unit", replay_bars("BTCUSD", AS_OF), AS_OF)


def no_alarm(asset: str, broken: list[str]) -> None:
    raise AssertionError(f"unexpected violation alarm for {asset}: {broken}")


def test_the_gate_reads_a_coinbase_account_once_per_decision(reservations: Reservations) -> None:
    # Given a Coinbase portfolio of USD and BTC
    fake = FakeCoinbaseBrokerage()
    broker = broker_for(fake)
    broker.account_id = f"coinbase-{uuid.uuid4()}"
    # When the gate sizes a BUY
    record = gate_risk(gate_input(), broker, RiskLimits(), no_alarm, reservations)
    # Then it saw the account's equity (cash plus the BTC at its price)
    assert record.risk is not None and record.risk.broker == "coinbase"
    assert record.risk.equity == D("10370.55") + D("0.130") * D("62000.00")
    # And it listed the open orders, then the accounts once, priced the BTC once, then read the product rules
    orders, account, price = f"{API}/orders/historical/batch", f"{API}/accounts", f"{API}/products/BTC-USD"
    assert [r.url.path for r in fake.requests] == [orders, account, price, price]
    assert fake.requests[0].url.params["order_status"] == "OPEN"
