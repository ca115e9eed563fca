"""GateRisk: size an approved decision within the stage's limits, or turn it into a HOLD with reasons."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.brokers_factory import get_broker, get_equity_memory, get_reservations, risk_limits
from ffe.contracts import GateRiskInput, parse
from ffe.observability import RISK_BLOCKS, RISK_VIOLATION_NOT_BLOCKED, MetricUnit, logger, metrics, tracer
from ffe.settings import RiskSettings, get_settings
from ffe.steps.gate import gate_risk


def alarm(asset: str, broken: list[str]) -> None:
    """A critical log line and one risk_violation_not_blocked count; no CloudWatch alarm watches it yet."""
    logger.critical("risk violation caught after approval", extra={"asset": asset, "violations": broken})
    metrics.add_metric(name=RISK_VIOLATION_NOT_BLOCKED, unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(GateRiskInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    settings = get_settings(RiskSettings)
    broker = get_broker(settings, inp.as_of, inp.asset)
    record = gate_risk(
        inp, broker, risk_limits(settings), alarm, get_reservations(settings), memory=get_equity_memory(settings)
    )
    if record.risk is not None and not record.risk.approved:
        metrics.add_dimension(name="reason", value=record.risk.reasons[0] if record.risk.reasons else "blocked")
        metrics.add_metric(name=RISK_BLOCKS, unit=MetricUnit.Count, value=1)
    logger.info("risk gated", extra={"action": record.action, "size": record.size})
    return record.model_dump(mode="json")
