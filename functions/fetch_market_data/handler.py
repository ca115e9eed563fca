"""FetchMarketData: bars for one asset of a decision cycle."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe import utc
from ffe.contracts import AssetTask, parse
from ffe.observability import logger, timed, tracer
from ffe.stage_steps.fetch import fetch


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("fetch")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = utc.now()  # the decision path's latency (RecordDecision) runs from here
    task = parse(AssetTask, event)
    logger.append_keys(cycle_id=task.cycle_id, asset=task.asset, timeframe=task.timeframe)
    data = fetch(task, started)
    logger.info("fetched", extra={"bars": len(data.bars), "dataset": data.source.dataset})
    return data.model_dump(mode="json")
