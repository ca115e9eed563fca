"""GateRisk: size an approved decision within the stage's limits, or turn it into a HOLD with reasons."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.brokers_factory import get_broker, get_equity_memory, get_reservations, risk_limits
from ffe.contracts import GateRiskInput, parse
from ffe.observability import emit, logger, timed, tracer
from ffe.settings import RiskSettings, get_settings
from ffe.stage_data import deployed
from ffe.steps.gate import gate_risk


def alarm(asset: str, broken: list[str]) -> None:
    """A critical log line and one ``risk_violation_not_blocked`` count (the critical alarm of that name)."""
    logger.critical("risk violation caught after approval", extra={"asset": asset, "violations": broken})
    emit("risk_violation_not_blocked", 1, {"asset": asset, "violations": broken})


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("gate")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(GateRiskInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    settings = get_settings(RiskSettings)
    broker = get_broker(settings, inp.as_of, inp.asset)
    record = gate_risk(
        inp,
        broker,
        risk_limits(settings),
        alarm,
        get_reservations(settings),
        memory=get_equity_memory(settings),
        stage=settings.stage,
        in_lambda=deployed(),
    )
    if record.risk is not None and not record.risk.approved:
        rule = record.risk.reasons[0] if record.risk.reasons else "blocked"
        emit("risk_blocks", 1, {"asset": inp.asset, "reasons": record.risk.reasons}, rule=rule)
    if record.risk is not None and record.risk.equity is not None:  # the account's equity, after settling
        emit("portfolio_value", float(record.risk.equity), {"asset": inp.asset}, account=broker.account_id)
    logger.info("risk gated", extra={"action": record.action, "size": record.size})
    return record.model_dump(mode="json")
