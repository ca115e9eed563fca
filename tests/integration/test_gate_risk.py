"""GateRisk with the paper broker on a real PostgreSQL: sized approvals, blocks recorded as HOLD with
risk events, unknown balances, and the alarm for a violation that slipped through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ffe.adapters.paper_broker import PaperBroker
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import GateRiskInput
from ffe.domain.errors import AuthError
from ffe.domain.models import Action, Timeframe
from ffe.domain.risk import RiskLimits, RiskVerdict
from ffe.steps import gate as gate_module
from ffe.steps.gate import gate_risk
from ffe.store.migrate import migrate
from tests import gate_inputs
from tests.gate_inputs import replay_bars

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


def gate_input(cycle_id: str, action: Action = Action.BUY, confidence: float = 0.5) -> GateRiskInput:
    return gate_inputs.gate_input(cycle_id, replay_bars("BTCUSD", AS_OF), AS_OF, action=action, confidence=confidence)


@pytest.fixture
def broker(postgres: str, cycle_id: str) -> Any:
    with psycopg.connect(postgres, autocommit=True) as conn:
        migrate(conn)
    paper = PaperBroker(postgres, f"paper-{cycle_id}", clock=lambda: AS_OF, starting_cash=Decimal("100000"))
    yield paper
    paper.close()


def alarms_to(alarms: list[tuple[str, list[str]]]) -> Any:
    return lambda asset, broken: alarms.append((asset, broken))


def no_alarm(asset: str, broken: list[str]) -> None:
    raise AssertionError(f"unexpected violation alarm for {asset}: {broken}")


def test_approved_buy_carries_its_size_within_the_position_cap(reservations, broker, cycle_id) -> None:
    record = gate_risk(gate_input(cycle_id, confidence=1.0), broker, RiskLimits(), no_alarm, reservations)
    assert record.action is Action.BUY and record.risk is not None and record.risk.approved
    assert record.size is not None and record.size > 0
    price = gate_input(cycle_id).bars[-1].close
    assert record.size * price <= 100000 * 0.10 + 1e-6  # the per-asset cap
    assert "position_cap" in record.risk.reasons and record.risk.broker == "paper"


def test_blocked_decision_is_recorded_as_hold_with_risk_events(reservations, postgres, broker, cycle_id, db) -> None:
    # Given a spot SELL with nothing to sell
    record = gate_risk(gate_input(cycle_id, action=Action.SELL), broker, RiskLimits(), no_alarm, reservations)
    assert record.action is Action.HOLD and record.confidence == 1.0 and record.size is None
    assert record.risk is not None and record.risk.reasons == ["nothing_to_sell"]
    assert record.reason.startswith("risk gate blocked SELL: nothing_to_sell; model: model says so")
    # When it is recorded (twice: a retried task)
    store = PostgresDecisionStore(postgres)
    first, again = store.record_decision(record), store.record_decision(record)
    store.close()
    # Then one decision and one risk event, linked, saying it was blocked
    assert first.id == again.id
    events = db.execute("SELECT rule, blocked FROM risk_events WHERE decision_id = %s", (first.id,)).fetchall()
    assert events == [("nothing_to_sell", True)]


def test_unreadable_balance_blocks_and_never_defaults(reservations, broker, cycle_id, monkeypatch) -> None:
    def rejected() -> None:
        raise AuthError("paper account locked", provider="paper")

    monkeypatch.setattr(broker, "balance", rejected)
    record = gate_risk(gate_input(cycle_id), broker, RiskLimits(), no_alarm, reservations)
    assert record.action is Action.HOLD and record.risk is not None
    assert record.risk.reasons == ["balance_unknown"] and record.risk.equity is None


def test_a_violation_after_approval_is_blocked_and_raises_the_alarm(
    reservations, broker, cycle_id, monkeypatch
) -> None:
    monkeypatch.setattr(gate_module, "violations", lambda *args, **kwargs: ["position cap"])
    alarms: list[tuple[str, list[str]]] = []
    record = gate_risk(gate_input(cycle_id), broker, RiskLimits(), alarms_to(alarms), reservations)
    assert alarms == [("BTCUSD", ["position cap"])]
    assert record.action is Action.HOLD and record.risk is not None and not record.risk.approved


def test_hold_passes_through_untouched(reservations, broker, cycle_id) -> None:
    inp = gate_input(cycle_id, action=Action.HOLD)
    assert gate_risk(inp, broker, RiskLimits(), no_alarm, reservations) == inp.decision


def test_settles_pending_paper_orders_before_sizing(reservations, broker, cycle_id) -> None:
    from ffe.domain.portfolio import OrderRequest, OrderSide

    broker.set_clock(lambda: AS_OF - timedelta(hours=3))
    broker.place_order(OrderRequest(f"{cycle_id}-carry", "BTCUSD", OrderSide.BUY, Decimal("0.5")))
    gate_risk(gate_input(cycle_id, confidence=0.2), broker, RiskLimits(), no_alarm, reservations)
    [position] = broker.positions()
    assert position.quantity == Decimal("0.5")  # filled from the bars the gate saw


def test_execute_refuses_what_the_gate_did_not_approve_and_skips_when_off(reservations, broker, cycle_id) -> None:
    from ffe.contracts import ExecuteOrderInput, RecordDecisionResult
    from ffe.domain.errors import InvalidInputError
    from ffe.steps.execute import execute_order

    recorded = RecordDecisionResult(kind="decision", id=1, created=True, cycle_id=cycle_id, asset="BTCUSD")
    blocked = gate_risk(gate_input(cycle_id, action=Action.SELL), broker, RiskLimits(), no_alarm, reservations)

    class NoLog:
        def record_execution(self, *args: Any) -> bool:
            raise AssertionError("nothing may be recorded")

    with pytest.raises(InvalidInputError, match="no approved order"):
        execute_order(
            ExecuteOrderInput(**blocked.model_dump(), recorded=recorded), broker, NoLog(), "paper", reservations
        )
    approved = gate_risk(gate_input(cycle_id), broker, RiskLimits(), no_alarm, reservations)
    skipped = execute_order(
        ExecuteOrderInput(**approved.model_dump(), recorded=recorded), broker, NoLog(), "off", reservations
    )
    assert skipped.status == "SKIPPED" and broker.order_status(skipped.client_order_id) is None


def test_drawdown_from_the_remembered_peak_trips_the_kill_switch(reservations, postgres, broker, cycle_id) -> None:
    from datetime import date

    from ffe.adapters.equity_marks import PostgresEquityMarks

    memory = PostgresEquityMarks(postgres)
    memory.marks(broker.account_id, date(2019, 6, 14), Decimal("130000"))  # worth 130k yesterday
    record = gate_risk(gate_input(cycle_id), broker, RiskLimits(), no_alarm, reservations, memory)  # 100k today: -23 %
    memory.close()
    assert record.action is Action.HOLD and record.risk is not None
    assert record.risk.reasons == ["drawdown_kill_switch"]


@pytest.mark.parametrize(("timeframe", "per_day"), [(Timeframe.H1, 24.0), (Timeframe.M15, 96.0), (Timeframe.D1, 1.0)])
def test_volatility_is_scaled_to_a_day_by_the_cycle_timeframe(
    reservations, broker, cycle_id, monkeypatch, timeframe, per_day
) -> None:
    # A daily bar's volatility is already a day's: scaling it by sqrt(24) would shrink every daily position 5x.
    seen: list[RiskLimits] = []
    real_gate = gate_module.gate

    def recording_gate(*args: Any) -> RiskVerdict:
        seen.append(args[5])
        return real_gate(*args)

    monkeypatch.setattr(gate_module, "gate", recording_gate)
    inp = gate_input(cycle_id)
    inp = inp.model_copy(
        update={"timeframe": timeframe, "decision": inp.decision.model_copy(update={"timeframe": timeframe})}
    )
    gate_risk(inp, broker, RiskLimits(), no_alarm, reservations)
    assert [limits.bars_per_day for limits in seen] == [per_day]
