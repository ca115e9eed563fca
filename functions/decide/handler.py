"""Decide: the meta-controller's regime-aware blend of the strategies (the naive router if it cannot run)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.models import champion
from ffe.contracts import DecideInput, parse
from ffe.domain.strategies import StrategyParams
from ffe.observability import MODEL_FALLBACKS, MetricUnit, logger, metrics, tracer
from ffe.settings import DecideSettings, get_settings
from ffe.steps.decide import decide


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    inp = parse(DecideInput, event)
    logger.append_keys(cycle_id=inp.cycle_id, asset=inp.asset, timeframe=inp.timeframe)
    settings = get_settings(DecideSettings)
    bundle = champion(settings.model_uri, settings.model_cache_seconds)
    record = decide(inp, bundle, StrategyParams(), settings.entry_threshold)
    metrics.add_dimension(name="model", value=record.model)
    metrics.add_metric(name=MODEL_FALLBACKS, unit=MetricUnit.Count, value=int(record.model != "meta_controller"))
    logger.info("decided", extra={"action": record.action, "confidence": record.confidence, "model": record.model})
    return record.model_dump(mode="json")
