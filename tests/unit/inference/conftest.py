"""Real inference instances: bundled BTCUSD hourly bars, the champion's regime posterior and strategy scores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pytest

from ffe.adapters.models import ModelBundle, load_bundle
from ffe.adapters.replay import ReplayProvider
from ffe.contracts import BarsSummary, InferenceInstance
from ffe.domain.features import FEATURE_NAMES, FeatureParams, feature_matrix
from ffe.domain.models import Bar, Timeframe
from ffe.domain.regime import posterior
from ffe.domain.strategies import StrategyParams, score_all

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
LOOKBACK = 120

InstanceFactory = Callable[..., InferenceInstance]


@lru_cache(maxsize=1)
def _bundle() -> ModelBundle:
    return load_bundle("bundled")


@lru_cache(maxsize=1)
def _history() -> tuple[Bar, ...]:
    return tuple(ReplayProvider().fetch("BTCUSD", Timeframe.H1, AS_OF, lookback=LOOKBACK + 200).bars)


def build_instance(offset: int = 0, path_len: int | None = None, entry_threshold: float = 0.15) -> InferenceInstance:
    """The decision ``offset`` bars before the last bundled one, with a path of ``path_len`` rows (roll_bars)."""
    bundle = _bundle()
    history = _history()
    end = len(history) - offset
    bars = history[end - LOOKBACK : end]
    closes = np.array([b.close for b in bars])
    rows = feature_matrix(closes, FeatureParams())[-(path_len or bundle.meta.roll_bars) :]
    post = posterior(bundle.regimes["crypto"], rows)
    last = post[-1]
    return InferenceInstance(
        asset="BTCUSD",
        timeframe=Timeframe.H1,
        as_of=bars[-1].time,
        scores={str(k): v for k, v in score_all(list(bars), StrategyParams()).items()},
        regime_label=f"regime-{int(np.argmax(last))}",
        regime_probabilities={f"regime-{i}": float(p) for i, p in enumerate(last)},
        features=dict(zip(FEATURE_NAMES, rows[-1].tolist(), strict=True)),
        path_features=rows.tolist(),
        path_posteriors=post.tolist(),
        summary=BarsSummary(
            bars=len(bars),
            first_time=bars[0].time,
            last_time=bars[-1].time,
            last_close=bars[-1].close,
            change_pct=(bars[-1].close / bars[0].close - 1) * 100,
            high=max(b.high for b in bars),
            low=min(b.low for b in bars),
        ),
        entry_threshold=entry_threshold,
    )


@pytest.fixture
def make_instance() -> InstanceFactory:
    return build_instance


@pytest.fixture
def bundle() -> ModelBundle:
    return _bundle()
