"""GateRisk: size an approved decision within the stage's limits, or turn it into a HOLD with reasons."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.brokers_factory import get_broker, get_equity_memory, get_reservations, risk_limits
from ffe.contracts import GateRiskInput, parse
from ffe.decision_metrics import gate_metrics, risk_violation_alarm
from ffe.observability import logger, timed, tracer
from ffe.settings import RiskSettings, get_settings
from ffe.stage_data import deployed
from ffe.steps.gate import gate_risk


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("gate")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(GateRiskInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
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
    logger.info("risk gated", extra={"action": record.action, "size": record.size})
    return record.model_dump(mode="json")
