"""FetchMarketData: bars for one asset of a decision cycle."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.market_data import get_provider
from ffe.contracts import AssetTask, parse
from ffe.observability import BARS_FETCHED, CACHE_HIT_RATE, PROVIDER_FALLBACKS, MetricUnit, logger, metrics, tracer
from ffe.settings import MarketDataSettings, get_settings
from ffe.steps.fetch import fetch_market_data


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse(AssetTask, event)
    logger.append_keys(cycle_id=task.cycle_id, asset=task.asset, timeframe=task.timeframe)
    settings = get_settings(MarketDataSettings)
    data = fetch_market_data(task, provider=get_provider(settings), lookback=settings.lookback_bars)
    metrics.add_dimension(name="provider", value=data.source.provider)
    metrics.add_metric(name=BARS_FETCHED, unit=MetricUnit.Count, value=len(data.bars))
    if data.source.route:  # live: how much came from the cache, and how many providers were passed over
        hit_rate = 100.0 * data.source.cached_bars / len(data.bars) if data.bars else 0.0
        metrics.add_metric(name=CACHE_HIT_RATE, unit=MetricUnit.Percent, value=round(hit_rate, 2))
        fallbacks = sum(1 for step in data.source.route if step.outcome != "ok")
        metrics.add_metric(name=PROVIDER_FALLBACKS, unit=MetricUnit.Count, value=fallbacks)
    if data.source.forming_bars_dropped:
        logger.warning("dropped bars still forming at as_of", extra={"dropped": data.source.forming_bars_dropped})
    logger.info("fetched", extra={"bars": len(data.bars), "dataset": data.source.dataset})
    return data.model_dump(mode="json")
