"""CheckStaleness: may a model see the fetched data? Fresh, complete and long enough (result lands at $.staleness)"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ffe.adapters.models import ModelUnavailableError
from ffe.contracts import CheckStalenessInput, parse
from ffe.decision_metrics import staleness_metrics
from ffe.domain.features import FeatureParams
from ffe.domain.strategies import StrategyParams
from ffe.observability import logger, timed, tracer
from ffe.settings import StalenessSettings, get_settings
from ffe.steps.regime import cycle_route, stored_bundle
from ffe.steps.staleness import check_staleness


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@timed("staleness")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    data = parse(CheckStalenessInput, event)
    logger.append_keys(cycle_id=data.cycle_id, asset=data.asset, timeframe=data.timeframe)
    settings = get_settings(StalenessSettings)
    # the versions DetectRegime will read: the longest meta-controller roll among them sets the bars needed
    bundles = [stored_bundle(v) for v in cycle_route(data).versions]
    rolls = [b.meta.roll_bars for b in bundles if not isinstance(b, ModelUnavailableError)]
    result = check_staleness(
        data,
        clock=lambda: datetime.now(UTC),
        params=StrategyParams(),
        features=FeatureParams(),
        roll_bars=max(rolls) if rolls else None,
        daily_max_missing_sessions=settings.daily_max_missing_sessions,
    )
    staleness_metrics(data, result)
    logger.info("staleness checked", extra=result.model_dump(mode="json"))
    return result.model_dump(mode="json")
