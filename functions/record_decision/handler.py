"""RecordDecision: store a decision or an asset's failure in PostgreSQL, exactly once."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.store import get_store
from ffe.contracts import parse_record
from ffe.observability import DECISIONS, DUPLICATE_RECORDS, FAILURES, MetricUnit, logger, metrics, tracer
from ffe.steps.record import record


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rec = parse_record(event)
    logger.append_keys(cycle_id=rec.cycle_id, asset=rec.asset)
    result = record(rec, store=get_store())
    if not result.created:
        metrics.add_metric(name=DUPLICATE_RECORDS, unit=MetricUnit.Count, value=1)
    elif result.kind == "decision":
        metrics.add_dimension(name="action", value=str(result.action))
        metrics.add_metric(name=DECISIONS, unit=MetricUnit.Count, value=1)
    else:
        metrics.add_dimension(name="error", value=str(result.error))
        metrics.add_metric(name=FAILURES, unit=MetricUnit.Count, value=1)
    logger.info("recorded", extra={"kind": result.kind, "record_id": result.id, "duplicate": not result.created})
    return result.model_dump(mode="json")
