"""InferDecision: the inference endpoint's ensemble decides; HOLD with ``inference_unavailable`` if it cannot."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.contracts import DecideInput, parse
from ffe.observability import logger, timed, tracer
from ffe.stage_steps.infer import infer
from ffe.steps.infer import UNAVAILABLE


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("infer")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DecideInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    record = infer(inp)
    down = record.reason.startswith(UNAVAILABLE)
    logger.info("inferred", extra={"action": record.action, "confidence": record.confidence, "unavailable": down})
    return record.model_dump(mode="json")
