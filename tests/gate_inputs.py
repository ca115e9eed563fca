"""The GateRiskInput a cycle hands the risk gate: one builder for the tests that drive GateRisk directly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ffe.adapters.replay import ReplayProvider
from ffe.contracts import BarModel, DataSource, DecisionRecord, GateRiskInput, digest_bars
from ffe.domain.models import Action, Bar, Timeframe

SOURCE = DataSource(provider="replay", dataset="t", synthetic=False, simulated_clock=True)


def replay_bars(asset: str, as_of: datetime, count: int = 120) -> list[Bar]:
    """The bundled history's last ``count`` closed 1h bars of ``asset`` at ``as_of``."""
    return list(ReplayProvider().fetch(asset, Timeframe.H1, as_of, count).bars)


def gate_input(
    cycle_id: str,
    bars: Sequence[Bar],
    as_of: datetime,
    *,
    asset: str = "BTCUSD",
    action: Action = Action.BUY,
    confidence: float = 0.5,
) -> GateRiskInput:
    """What Gate risk receives for a fresh ``action`` at ``confidence`` on ``bars`` (1h, 60 s old)."""
    models = [BarModel.from_domain(b) for b in bars]
    decision = DecisionRecord(
        cycle_id=cycle_id,
        as_of=as_of,
        timeframe=Timeframe.H1,
        asset=asset,
        bar_time=models[-1].time,
        action=action,
        confidence=confidence,
        stale=False,
        reason="model says so",
        data_age_seconds=60.0,
        staleness_threshold_seconds=7200,
        model="naive_router",
        model_version="1",
        source=SOURCE,
        input_sha256=digest_bars(models),
    )
    staleness = {
        "stale": False,
        "code": "fresh",
        "reason": "fresh",
        "bar_count": len(models),
        "last_bar_time": models[-1].time,
        "age_seconds": 60.0,
        "threshold_seconds": 7200,
        "checked_at": as_of,
    }
    return GateRiskInput(
        cycle_id=cycle_id,
        as_of=as_of,
        timeframe=Timeframe.H1,
        asset=asset,
        source=SOURCE,
        bars=models,
        bars_sha256=digest_bars(models),
        staleness=staleness,
        decision=decision,
    )
