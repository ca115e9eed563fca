"""Decide: the naive router's blend of the three strategies, on fresh data only."""

from ffe.contracts import DecideInput, DecisionRecord
from ffe.domain.ensemble import NAIVE_ROUTER, NAIVE_ROUTER_VERSION, naive_router
from ffe.domain.strategies import StrategyParams, score_all


def decide(inp: DecideInput, params: StrategyParams, entry_threshold: float) -> DecisionRecord:
    """Score the series with every strategy and blend them with equal weights."""
    bars = inp.domain_bars()
    scores = score_all(bars, params)
    blend = naive_router(scores, entry_threshold)
    return DecisionRecord(
        cycle_id=inp.cycle_id,
        as_of=inp.as_of,
        timeframe=inp.timeframe,
        asset=inp.asset,
        execution_id=inp.execution_id,
        bar_time=bars[-1].time,
        action=blend.action,
        confidence=blend.confidence,
        stale=False,
        reason=blend.reason,
        data_age_seconds=inp.staleness.age_seconds,
        staleness_threshold_seconds=inp.staleness.threshold_seconds,
        model=NAIVE_ROUTER,
        model_version=NAIVE_ROUTER_VERSION,
        signals={str(name): round(score, 6) for name, score in scores.items()},
        source=inp.source,
        input_sha256=inp.bars_sha256,
    )
