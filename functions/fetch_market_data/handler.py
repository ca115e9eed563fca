"""FetchMarketData: bars for one asset of a decision cycle."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe import utc
from ffe.adapters.market_data import get_provider
from ffe.contracts import AssetTask, parse
from ffe.observability import emit, logger, timed, tracer
from ffe.settings import MarketDataSettings, get_settings
from ffe.steps.fetch import fetch_market_data


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("fetch")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = utc.now()  # the decision path's latency (RecordDecision) runs from here
    task = parse(AssetTask, event)
    logger.append_keys(cycle_id=task.cycle_id, asset=task.asset, timeframe=task.timeframe)
    settings = get_settings(MarketDataSettings)
    data = fetch_market_data(task, provider=get_provider(settings), lookback=settings.lookback_bars, started_at=started)
    where = {"asset": task.asset, "provider": data.source.provider}
    emit("bars_fetched", len(data.bars), where)
    if data.source.route:  # live: how much came from the cache, and how many providers were passed over
        hit_rate = 100.0 * data.source.cached_bars / len(data.bars) if data.bars else 0.0
        emit("cache_hit_rate", round(hit_rate, 2), where)
        fallbacks = sum(1 for step in data.source.route if step.outcome != "ok")
        emit("provider_fallbacks", fallbacks, where)
    if data.source.forming_bars_dropped:
        logger.warning("dropped bars still forming at as_of", extra={"dropped": data.source.forming_bars_dropped})
    logger.info("fetched", extra={"bars": len(data.bars), "dataset": data.source.dataset})
    return data.model_dump(mode="json")
