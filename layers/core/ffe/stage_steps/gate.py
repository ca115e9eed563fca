"""GateRisk's step with the stage's venue, limits, reservations and its metrics."""

from __future__ import annotations

from ffe.adapters.brokers_factory import get_broker, get_equity_memory, get_reservations, risk_limits
from ffe.contracts import DecisionRecord, GateRiskInput
from ffe.decision_metrics import gate_metrics, risk_violation_alarm
from ffe.settings import RiskSettings, get_settings
from ffe.stage_data import deployed
from ffe.steps.gate import gate_risk


def gate(inp: GateRiskInput) -> DecisionRecord:
    """GateRisk on the stage's venue for the asset (its class the universe file's, else the table's)."""
    settings = get_settings(RiskSettings)
    broker = get_broker(settings, inp.as_of, inp.asset, inp.asset_class)
    record = gate_risk(
        inp,
        broker,
        risk_limits(settings),
        risk_violation_alarm,
        get_reservations(settings),
        memory=get_equity_memory(settings),
        stage=settings.stage,
        in_lambda=deployed(),
    )
    gate_metrics(record, broker.account_id)
    return record
