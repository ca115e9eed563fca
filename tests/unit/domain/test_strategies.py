import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffe.contracts import BarColumns
from ffe.domain.ensemble import naive_router
from ffe.domain.models import Action
from ffe.domain.strategies import (
    Strategy,
    StrategyParams,
    breakout,
    mean_reversion,
    score_all,
    score_columns,
    trend_following,
)
from tests.fakes.market_data import hourly

END = datetime(2024, 1, 1, tzinfo=UTC)
PARAMS = StrategyParams()


def test_trend_following_is_positive_in_an_uptrend_and_negative_in_a_downtrend() -> None:
    up = [100 * 1.002**i + math.sin(i) * 0.05 for i in range(60)]
    down = list(reversed(up))
    assert trend_following(up, 20, 50) > 0.5
    assert trend_following(down, 20, 50) < -0.5


def test_trend_following_flat_series_has_no_view() -> None:
    assert trend_following([100.0] * 60, 20, 50) == 0.0


def test_mean_reversion_leans_against_a_spike() -> None:
    calm = [100.0 + (0.1 if i % 2 else -0.1) for i in range(19)]
    assert mean_reversion([*calm, 103.0], 20) < -0.5  # stretched up: sell
    assert mean_reversion([*calm, 97.0], 20) > 0.5  # stretched down: buy
    assert mean_reversion([100.0] * 20, 20) == 0.0


def test_breakout_above_below_and_inside_the_donchian_channel() -> None:
    base = [100.0 + (0.5 if i % 2 else -0.5) for i in range(20)]
    assert breakout(hourly([*base, 102.0], END), 20) == 1.0
    assert breakout(hourly([*base, 98.0], END), 20) == -1.0
    assert breakout(hourly([*base, 100.2], END), 20) == 0.0


def test_strategies_refuse_short_series() -> None:
    with pytest.raises(ValueError, match="needs 51 bars"):
        trend_following([1.0] * 50, 20, 50)


@given(st.lists(st.floats(min_value=0.01, max_value=1e6), min_size=PARAMS.min_bars, max_size=120))
def test_every_score_is_within_minus_one_and_one(closes: list[float]) -> None:
    scores = score_all(hourly(closes, END), PARAMS)
    assert set(scores) == set(Strategy)
    assert all(-1.0 <= s <= 1.0 for s in scores.values())
    blend = naive_router(scores)
    assert 0.0 <= blend.confidence <= 1.0


def test_naive_router_is_an_equal_weight_blend() -> None:
    scores = {Strategy.TREND_FOLLOWING: 0.9, Strategy.MEAN_REVERSION: 0.3, Strategy.BREAKOUT: 0.0}
    blend = naive_router(scores, entry_threshold=0.15)
    assert blend.score == pytest.approx(0.4)
    assert blend.action is Action.BUY and blend.confidence == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("scores", "action", "confidence"),
    [
        ((-0.6, -0.3, 0.0), Action.SELL, 0.3),
        ((0.1, -0.1, 0.0), Action.HOLD, 1.0),
        ((0.3, 0.0, 0.0), Action.HOLD, 1 / 3),
    ],
)
def test_naive_router_actions_and_confidence(
    scores: tuple[float, float, float], action: Action, confidence: float
) -> None:
    blend = naive_router(dict(zip(Strategy, scores, strict=True)), entry_threshold=0.15)
    assert blend.action is action
    assert blend.confidence == pytest.approx(confidence, abs=1e-6)
    assert "trend_following" in blend.reason


def test_naive_router_on_known_real_shape_uptrend_buys() -> None:
    closes = [100 * 1.003**i for i in range(80)]
    blend = naive_router(score_all(hourly(closes, END), PARAMS))
    assert blend.action is Action.BUY


@given(
    closes=st.lists(st.floats(min_value=1e-3, max_value=1e6), min_size=51, max_size=130),
    spread=st.sampled_from([0.0, 0.001, 0.05]),
    windows=st.tuples(*(st.integers(min_value=2, max_value=40) for _ in range(4))),
)
def test_the_columns_score_exactly_as_the_bars(closes: list[float], spread: float, windows: tuple[int, ...]) -> None:
    fast, slow, zscore, channel = windows
    params = StrategyParams(min(fast, slow), max(fast, slow), zscore, channel)
    bars = hourly(closes, END, spread)
    if len(bars) < params.min_bars:
        return
    scores = score_all(bars, params)
    got = score_columns(BarColumns.of(bars), params)
    assert {k: repr(v) for k, v in got.items()} == {k: repr(v) for k, v in scores.items()}  # bit for bit, NaN too


def test_the_columns_refuse_a_short_series_as_the_bars_do() -> None:
    bars = hourly([1.0] * 50, END)
    with pytest.raises(ValueError, match="score_all needs 51 bars, got 50"):
        score_all(bars, PARAMS)
    with pytest.raises(ValueError, match="score_all needs 51 bars, got 50"):
        score_columns(BarColumns.of(bars), PARAMS)
