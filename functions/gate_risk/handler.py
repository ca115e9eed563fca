"""GateRisk: size an approved decision within the stage's limits, or turn it into a HOLD with reasons."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.contracts import GateRiskInput, parse
from ffe.observability import logger, timed, tracer
from ffe.stage_steps.gate import gate


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("gate")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(GateRiskInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    record = gate(inp)
    logger.info("risk gated", extra={"action": record.action, "size": record.size})
    return record.model_dump(mode="json")
