"""GateRisk's reads of a live venue: its open orders and the account once per decision (Coinbase over its fake,
reservations on the real database)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal as D

from ffe.adapters.replay import ReplayProvider
from ffe.contracts import BarModel, DataSource, DecisionRecord, GateRiskInput, digest_bars
from ffe.domain.models import Action, Timeframe
from ffe.domain.ports import Reservations
from ffe.domain.risk import RiskLimits
from ffe.steps.gate import gate_risk
from tests.fakes.coinbase_brokerage_server import API, FakeCoinbaseBrokerage, broker_for

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
SOURCE = DataSource(provider="replay", dataset="t", synthetic=False, simulated_clock=True)


def gate_input() -> GateRiskInput:
    bars = [BarModel(**asdict(b)) for b in ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, 120).bars]
    decision = DecisionRecord(
        cycle_id="gate-unit",
        as_of=AS_OF,
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        bar_time=bars[-1].time,
        action=Action.BUY,
        confidence=0.5,
        stale=False,
        reason="model says so",
        data_age_seconds=60.0,
        staleness_threshold_seconds=7200,
        model="naive_router",
        model_version="1",
        source=SOURCE,
        input_sha256=digest_bars(bars),
    )
    staleness = {
        "stale": False,
        "code": "fresh",
        "reason": "fresh",
        "bar_count": len(bars),
        "last_bar_time": bars[-1].time,
        "age_seconds": 60.0,
        "threshold_seconds": 7200,
        "checked_at": AS_OF,
    }
    return GateRiskInput(
        cycle_id="gate-unit",
        as_of=AS_OF,
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        source=SOURCE,
        bars=bars,
        bars_sha256=digest_bars(bars),
        staleness=staleness,
        decision=decision,
    )


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
