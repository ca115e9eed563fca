"""DetectRegime: the market regime posterior from the routed version's mixture (result lands at $.regime)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.contracts import DetectRegimeInput, parse
from ffe.observability import logger, timed, tracer
from ffe.stage_steps.regime import regime


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("regime")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DetectRegimeInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    result = regime(inp)
    logger.info("regime detected", extra={"regime": result.label, "available": result.available, "why": result.reason})
    return result.model_dump(mode="json")
