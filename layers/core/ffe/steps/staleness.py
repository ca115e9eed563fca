"""CheckStaleness: the single gate in front of every model (may a model see this data?)."""

from collections.abc import Callable
from datetime import datetime

from ffe.contracts import CheckStalenessResult, MarketData
from ffe.domain.features import FeatureParams
from ffe.domain.staleness import DEFAULT_DAILY_MAX_MISSING_SESSIONS, assess_staleness_columns
from ffe.domain.strategies import StrategyParams
from ffe.domain.universe import class_of


def check_staleness(
    data: MarketData,
    clock: Callable[[], datetime],
    params: StrategyParams,
    *,
    features: FeatureParams | None = None,
    roll_bars: int | None = None,
    daily_max_missing_sessions: int = DEFAULT_DAILY_MAX_MISSING_SESSIONS,
) -> CheckStalenessResult:
    """Judge ``data`` against the wall clock, or against ``as_of`` when the data is replayed history.

    ``roll_bars`` is the champion meta-controller's roll (``None`` without a usable champion): with it, the
    series must hold the whole regime path the endpoint's RL voter rolls over (see :func:`bars_needed`).
    """
    now = data.as_of if data.source.simulated_clock else clock()
    need, why = bars_needed(params, features or FeatureParams(), roll_bars)
    verdict = assess_staleness_columns(
        data.bars,
        data.timeframe,
        now,
        min_bars=need,
        asset_class=class_of(data.asset, data.asset_class),
        daily_max_missing_sessions=daily_max_missing_sessions,
        history_note=why,
    )
    return CheckStalenessResult(
        stale=verdict.stale,
        code=verdict.code,
        reason=verdict.reason,
        bar_count=verdict.bar_count,
        last_bar_time=verdict.last_bar_time,
        age_seconds=verdict.age_seconds,
        threshold_seconds=verdict.threshold_seconds,
        checked_at=now,
    )


def bars_needed(params: StrategyParams, features: FeatureParams, roll_bars: int | None) -> tuple[int, str]:
    """The bars the models read, and why: the strategies' look-back, or with a champion the regime path.

    DetectRegime's first complete feature row needs ``features.warmup`` bars, and the endpoint's RL voter
    rolls the meta-controller over ``roll_bars`` rows (HOLD ``rl_unavailable`` with fewer), so the path
    needs ``warmup - 1 + roll_bars`` bars.
    """
    look_back = (params.min_bars, "the strategies' look-back")
    if roll_bars is None:
        return look_back
    path = features.warmup - 1 + roll_bars
    if path <= params.min_bars:
        return look_back
    return path, (
        f"the regime path: {features.warmup} bars for the first feature row, "
        f"{roll_bars - 1} more for the meta-controller's {roll_bars}-row roll"
    )
