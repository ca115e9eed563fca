"""The backtest engine: no look-ahead, the paper venue's execution rule, metrics that mean what they say."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import (
    ALL_STRATEGIES,
    BacktestConfig,
    BacktestResult,
    BarArrays,
    StrategyName,
    holdout_start,
    run_backtest,
)
from ffe.domain.models import Bar, Timeframe
from tests.fakes.models import random_bundle

N_BARS, START = 400, 200  # a short real series: 200 bars of look-back/selection, 200 traded
BUNDLE = random_bundle(seed=5)


@cache
def _btc() -> BarArrays:
    return BarArrays.from_bars(load_bars(datasets()["BTCUSD"].file)[:N_BARS])


@cache
def _baseline() -> BacktestResult:
    bars = _btc()
    return run_backtest(bars, "BTCUSD", Timeframe.H1, BUNDLE, start=_start(bars))


def _start(bars: BarArrays) -> datetime:
    return datetime.fromisoformat(f"{bars.times[START]}+00:00")


def _perturbed(bars: BarArrays, t: int, seed: int, scale: float) -> BarArrays:
    """Every bar after ``t`` moved by a random factor (OHLC together, so each bar stays well formed)."""
    rng = np.random.default_rng(seed)
    factor = np.ones(len(bars))
    factor[t + 1 :] = np.exp(np.cumsum(rng.normal(0.0, scale, len(bars) - t - 1)))
    wider = np.ones(len(bars))
    wider[t + 1 :] = 1.0 + rng.uniform(0.0, 0.02, len(bars) - t - 1)
    return BarArrays(
        bars.times,
        bars.open * factor,
        bars.high * factor * wider,
        bars.low * factor / wider,
        bars.close * factor,
        bars.volume,
    )


def _same_prefix(a: np.ndarray, b: np.ndarray, n: int) -> bool:
    """Equal up to row ``n``: exactly for labels and actions, to 1e-12 for numbers.

    Not bit for bit: the meta-controller's batched matmul (BLAS) can round the last bit differently when the
    series is longer or shorter; a leak from the future moves numbers by far more than 1e-12.
    """
    if a.dtype.kind != "f":
        return bool(np.array_equal(a[:n], b[:n]))
    return bool(np.allclose(a[:n], b[:n], rtol=0.0, atol=1e-12, equal_nan=True))


# --- look-ahead ---------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    t=st.integers(min_value=START, max_value=N_BARS - 1),
    seed=st.integers(min_value=0, max_value=2**31),
    scale=st.sampled_from([0.002, 0.02, 0.1]),
    truncate=st.booleans(),
)
def test_bars_after_t_never_change_anything_at_or_before_t(t: int, seed: int, scale: float, truncate: bool) -> None:
    # Given the backtest on the real bars, and the same bars with everything after t rewritten or cut off
    bars = _btc()
    base = _baseline()
    if truncate:
        other = run_backtest(bars, "BTCUSD", Timeframe.H1, BUNDLE, start=_start(bars), end=_bar_time(bars, t + 1))
    else:
        other = run_backtest(_perturbed(bars, t, seed, scale), "BTCUSD", Timeframe.H1, BUNDLE, start=_start(bars))
    # Then every decision, weight, position and mark up to and including t is the same
    n = t - base.first_index + 1
    assert base.regimes[:n] == other.regimes[:n]
    assert _same_prefix(base.signals, other.signals, n)
    assert base.regime_switch_choice == other.regime_switch_choice  # chosen before the window
    for name, run in base.runs.items():
        alt = other.runs[name]
        for field in ("actions", "confidence", "weights", "scores", "models", "positions", "equity", "exposure"):
            assert _same_prefix(getattr(run, field), getattr(alt, field), n), (name, field)
        # An order at t is only placed when bar t+1 is in the window (it fills there): compare before t.
        assert _same_prefix(run.orders, alt.orders, n if not truncate else n - 1), name


def _bar_time(bars: BarArrays, i: int) -> datetime | None:
    return None if i >= len(bars) else datetime.fromisoformat(f"{bars.times[i]}+00:00")


def test_the_baseline_trades_so_the_look_ahead_property_has_something_to_catch() -> None:
    base = _baseline()
    assert base.bars == N_BARS - START
    assert base.runs["meta_controller"].metrics.trades > 0
    assert {"BUY", "SELL"} <= set(base.runs["meta_controller"].actions.tolist())
    assert len(set(base.regimes)) > 1


# --- execution ----------------------------------------------------------------------------------------


def test_an_order_decided_at_t_fills_at_the_next_open_with_slippage_and_fee() -> None:
    # Given the meta-controller's run, re-derive its equity from its orders alone, in floats
    base = _baseline()
    bars = _btc()
    run = base.runs["meta_controller"]
    cfg = base.config
    fee, slip = float(cfg.fee_rate), float(cfg.slippage)
    lo = base.first_index
    cash, held = float(cfg.starting_cash), 0.0
    for i in range(base.bars):
        if i and run.orders[i - 1]:
            q = run.orders[i - 1]  # signed; decided at close i-1, filled at open i
            price = bars.open[lo + i] * (1 + math.copysign(slip, q))
            cash -= q * price + abs(q) * price * fee
            held += q
        # Then positions and marks agree with the engine's Decimal book at every bar
        assert run.positions[i] == pytest.approx(held, abs=1e-12)
        assert run.equity[i] == pytest.approx(cash + held * bars.close[lo + i], rel=1e-12)
    assert run.metrics.trades == int(np.count_nonzero(run.orders[:-1]))
    assert run.orders[-1] == 0  # the last decision would fill after the window


def test_no_strategy_ever_goes_short_and_orders_respect_the_per_asset_cap() -> None:
    base = _baseline()
    cap = base.limits.max_position_fraction
    for name, run in base.runs.items():
        assert np.all(run.positions >= 0), name  # GateRisk never allows shorts (spot venues)
        # The gate sizes at the decision's marks: the position after a BUY stays within the cap at close t.
        buys = run.orders > 0
        after = (run.positions[buys] + run.orders[buys]) * base.closes[buys]
        assert np.all(after <= cap * run.equity[buys] * (1 + 1e-9)), name


def test_buy_and_hold_on_a_rising_series_never_draws_down() -> None:
    # Given a strictly rising series (uneven steps, so the gate can measure volatility) and no trading costs
    steps = 0.001 + 0.002 * np.abs(np.sin(np.arange(300)))
    closes = 100.0 * np.exp(np.cumsum(steps))
    bars = _bars(closes)
    cfg = BacktestConfig(strategies=(StrategyName.BUY_AND_HOLD,), fee_rate=Decimal(0), slippage=Decimal(0))
    # When buy and hold runs over the whole series
    run = run_backtest(bars, "ETHUSD", Timeframe.H1, None, config=cfg).runs["buy_and_hold"]
    # Then it buys once, holds a constant position, and its equity never falls
    m = run.metrics
    assert m.trades == 1 and m.max_drawdown == 0.0 and m.total_return > 0
    entered = int(np.argmax(run.positions > 0))
    assert np.all(run.positions[entered:] == run.positions[entered]) and np.all(run.positions[:entered] == 0)
    assert np.all(np.diff(run.equity) >= 0)
    assert m.churn_rate == pytest.approx(1 / (len(closes) - 1))  # one entry, then a constant position
    assert m.sharpe > 0 and m.sortino == 0.0  # no losing bar: no downside deviation to divide by


def test_a_flat_market_trades_nothing_and_every_figure_is_zero() -> None:
    # Given a constant price: every strategy scores 0, and the gate cannot size (no volatility)
    bars = _bars(np.full(200, 50.0))
    result = run_backtest(bars, "BTCUSD", Timeframe.H1, BUNDLE)
    for name, run in result.runs.items():
        m = run.metrics
        assert (m.trades, m.total_return, m.max_drawdown, m.turnover, m.churn_rate, m.sharpe) == (0, 0, 0, 0, 0, 0)
        assert np.all(run.equity == 100_000.0), name
    assert set(result.runs["meta_controller"].actions.tolist()) == {"HOLD"}
    assert result.runs["buy_and_hold"].block_reasons == {"invalid_input": result.runs["buy_and_hold"].metrics.blocked}


def test_decisions_before_the_warm_up_are_stale_holds() -> None:
    result = run_backtest(_btc(), "BTCUSD", Timeframe.H1, BUNDLE, config=BacktestConfig(strategies=ALL_STRATEGIES[:2]))
    run = result.runs["meta_controller"]
    assert set(run.models[:50].tolist()) == {"stale"} and set(run.actions[:50].tolist()) == {"HOLD"}
    assert set(run.models[50:83].tolist()) == {"naive_router"}  # no regime path to roll yet: Decide's fallback
    assert set(run.models[83:].tolist()) == {"meta_controller"}
    assert np.all(np.isnan(run.weights[:50]))
    assert result.runs["naive_router"].metrics.max_disruption == 0.0  # constant weights never jump


# --- strategies and figures ----------------------------------------------------------------------------


def test_regime_switch_is_one_hot_and_chosen_only_on_bars_before_the_window() -> None:
    base = _baseline()
    run = base.runs["regime_switch"]
    assert set(base.regime_switch_choice) == set(BUNDLE.regimes["crypto"].labels)
    assert np.all(np.isin(run.weights, [0.0, 1.0])) and np.all(run.weights.sum(axis=1) == 1.0)
    assert run.metrics.max_disruption in (0.0, 1.0)  # a hard router switches completely or not at all
    # Rewriting every traded bar leaves the choice alone
    moved = run_backtest(_perturbed(_btc(), START, 1, 0.05), "BTCUSD", Timeframe.H1, BUNDLE, start=_start(_btc()))
    assert moved.regime_switch_choice == base.regime_switch_choice


def test_regime_switch_is_skipped_with_a_reason_when_nothing_precedes_the_window() -> None:
    result = run_backtest(_btc(), "BTCUSD", Timeframe.H1, BUNDLE)
    assert "regime_switch" not in result.runs and "before the window" in result.skipped["regime_switch"]
    no_model = run_backtest(_btc(), "BTCUSD", Timeframe.H1, None, start=_start(_btc()))
    assert "no regimes" in no_model.skipped["regime_switch"] and no_model.bundle_note == "no model bundle"


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_a_strategy_backtested_alone_runs_as_it_does_beside_every_other(name: StrategyName) -> None:
    # The engine computes only what the configured strategies read (the policy's weights for the meta-controller),
    # and shares the risk gate's window statistics between them: neither may change a run.
    bars = _btc()
    alone = run_backtest(bars, "BTCUSD", Timeframe.H1, BUNDLE, start=_start(bars), config=BacktestConfig((name,)))
    run, base = alone.runs[name], _baseline().runs[name]
    for field in ("equity", "positions", "orders", "weights", "scores", "confidence", "actions", "models"):
        assert np.array_equal(getattr(run, field), getattr(base, field), equal_nan=field in ("weights", "scores")), (
            field
        )
    assert (run.metrics, run.block_reasons) == (base.metrics, base.block_reasons)
    assert alone.regimes == _baseline().regimes


def test_holdout_is_the_last_quarter_and_the_window_bounds_are_half_open() -> None:
    bars = _btc()
    start = holdout_start(bars.times)
    result = run_backtest(
        bars,
        "BTCUSD",
        Timeframe.H1,
        None,
        start=start,
        end=_bar_time(bars, 350),
        config=BacktestConfig(strategies=(StrategyName.NAIVE_ROUTER,)),
    )
    assert result.first_index == 300 and result.bars == 50
    with pytest.raises(ValueError, match="no bars"):
        run_backtest(bars, "BTCUSD", Timeframe.H1, None, start=_bar_time(bars, 10), end=_bar_time(bars, 10))


def test_config_rejects_unknown_strategies_and_short_lookbacks() -> None:
    with pytest.raises(ValueError, match="unknown strategies"):
        BacktestConfig(strategies=("momentum",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lookback"):
        replace(BacktestConfig(), lookback_bars=20)


def _bars(closes: np.ndarray) -> list[Bar]:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i, close in enumerate(closes.tolist()):
        open_ = closes[i - 1] if i else close
        out.append(Bar(t0 + timedelta(hours=i), float(open_), max(open_, close), min(open_, close), close, 1.0))
    return out


def test_a_malformed_series_is_refused_before_anything_is_decided() -> None:
    bars = _btc().head(100)
    shuffled = BarArrays(bars.times[::-1], bars.open, bars.high, bars.low, bars.close, bars.volume)
    with pytest.raises(ValueError, match="strictly increasing"):
        run_backtest(shuffled, "BTCUSD", Timeframe.H1, None)
    negative = BarArrays(bars.times, bars.open, bars.high, bars.low, -bars.close, bars.volume)
    with pytest.raises(ValueError, match="positive"):
        run_backtest(negative, "BTCUSD", Timeframe.H1, None)


def test_the_digest_names_the_bars_exactly() -> None:
    bars = _btc()
    assert bars.digest() == BarArrays.from_bars(load_bars(datasets()["BTCUSD"].file)[:N_BARS]).digest()
    assert _perturbed(bars, N_BARS - 2, seed=1, scale=1e-9).digest() != bars.digest()  # one close, a hair apart
    shifted = replace(bars, times=bars.times + np.timedelta64(1, "h"))
    assert shifted.digest() != bars.digest()  # the same prices an hour later are other bars
