"""RecordDecision: store a decision, an asset's failure or a cycle's opening/closing in PostgreSQL, exactly once."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.executions import execution_status
from ffe.adapters.store import get_store
from ffe.contracts import parse_record
from ffe.observability import logger, metrics, record_metrics, tracer
from ffe.steps.record import record


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rec = parse_record(event)
    logger.append_keys(cycle_id=getattr(rec, "cycle_id", None), asset=getattr(rec, "asset", None))
    result = record(rec, store=get_store(), execution_status=execution_status)
    record_metrics(rec, result)
    logger.info("recorded", extra={"kind": result.kind, "record_id": result.id, "duplicate": not result.created})
    return result.model_dump(mode="json")
