"""CheckStaleness: may a model see the fetched data? Fresh, complete and long enough (result lands at $.staleness)"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.contracts import CheckStalenessInput, parse
from ffe.observability import logger, timed, tracer
from ffe.stage_steps.staleness import staleness


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("staleness")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    data = parse(CheckStalenessInput, event)
    logger.append_keys(cycle_id=data.cycle_id, asset=data.asset, timeframe=data.timeframe)
    result = staleness(data)
    logger.info("staleness checked", extra=result.model_dump(mode="json"))
    return result.model_dump(mode="json")
