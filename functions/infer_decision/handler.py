"""InferDecision: the inference endpoint's ensemble decides; HOLD with ``inference_unavailable`` if it cannot."""

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.inference import get_inference
from ffe.contracts import DecideInput, parse
from ffe.decision_metrics import inference_metrics
from ffe.domain.strategies import StrategyParams
from ffe.observability import logger, timed, tracer
from ffe.settings import InferenceSettings, get_settings
from ffe.steps.infer import UNAVAILABLE, infer_decision


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("infer")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DecideInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    settings = get_settings(InferenceSettings)
    trace = os.environ.get("_X_AMZN_TRACE_ID")  # the Lambda's X-Ray trace, carried into the container's spans
    record = infer_decision(
        inp, get_inference(settings), StrategyParams(), settings.entry_threshold, settings.inference_llm, trace
    )
    down = record.reason.startswith(UNAVAILABLE)
    inference_metrics(record, down)
    logger.info("inferred", extra={"action": record.action, "confidence": record.confidence, "unavailable": down})
    return record.model_dump(mode="json")
