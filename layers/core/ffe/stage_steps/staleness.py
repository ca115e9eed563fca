"""CheckStaleness's step with the stage's settings, the model store and its metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from ffe.adapters.models import ModelUnavailableError
from ffe.contracts import CheckStalenessResult, MarketData
from ffe.decision_metrics import staleness_metrics
from ffe.domain.features import FeatureParams
from ffe.domain.strategies import StrategyParams
from ffe.settings import StalenessSettings, get_settings
from ffe.steps.regime import cycle_route, stored_bundle
from ffe.steps.staleness import check_staleness


def staleness(data: MarketData) -> CheckStalenessResult:
    """CheckStaleness: the longest meta-controller roll among the versions DetectRegime will read sets the bars
    needed."""
    settings = get_settings(StalenessSettings)
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
    return result
