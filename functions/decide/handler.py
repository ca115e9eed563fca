"""Decide: the naive router's blend of trend, mean-reversion and breakout signals."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.contracts import DecideInput, parse
from ffe.domain.strategies import StrategyParams
from ffe.observability import logger, tracer
from ffe.settings import DecideSettings, get_settings
from ffe.steps.decide import decide


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DecideInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    record = decide(inp, StrategyParams(), get_settings(DecideSettings).entry_threshold)
    logger.info("decided", extra={"action": record.action, "confidence": record.confidence})
    return record.model_dump(mode="json")
