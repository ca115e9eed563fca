"""Parity: the backtest's decision at bar t is the one the Lambdas make on the bars they would have fetched.

For sampled bars of real series, the exact DetectRegimeInput/DecideInput a cycle would carry (the last 120
bars up to t, replayed with a simulated clock, through JSON as the state machine passes them) goes through
``check_staleness`` -> ``detect_regime`` -> ``decide``; the backtest must agree on the action, the confidence,
the regime, the model that decided and the meta-controller's weights.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import pytest

from ffe.adapters.models import ModelBundle, ModelUnavailableError
from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import BacktestConfig, BacktestResult, BarArrays, StrategyName, run_backtest
from ffe.contracts import (
    BarModel,
    CheckStalenessResult,
    DataSource,
    DecideInput,
    DecisionRecord,
    DetectRegimeInput,
    MarketData,
    RegimeResult,
    digest_bars,
)
from ffe.domain.features import FeatureParams
from ffe.domain.meta import OPTIONS, latest_weights
from ffe.domain.models import Bar
from ffe.domain.strategies import StrategyParams
from ffe.steps.regime import detect_regime
from ffe.steps.staleness import check_staleness
from tests.fakes.models import random_bundle
from tests.reference_decision import decide

LOOKBACK = 120
ENTRY_THRESHOLD = 0.15
CONFIG = BacktestConfig(strategies=(StrategyName.META_CONTROLLER, StrategyName.NAIVE_ROUTER))
# The warm-up edges (stale below 51 bars, no regime below 61, no meta-controller roll below 84), then random.
EDGES = (0, 30, 49, 50, 51, 60, 61, 82, 83, 84, 119, 120)
N_RANDOM = 30


def _no_wall_clock() -> datetime:
    raise AssertionError("a replay is judged against as_of, never the wall clock")


@cache
def _series(asset: str) -> tuple[tuple[Bar, ...], str]:
    dataset = datasets()[asset]
    return load_bars(dataset.file), dataset.label


@cache
def _backtest(asset: str, variant: str) -> BacktestResult:
    bars, _ = _series(asset)
    return run_backtest(BarArrays.from_bars(bars), asset, datasets()[asset].timeframe, _bundle(variant), config=CONFIG)


def _bundle(variant: str) -> ModelBundle | ModelUnavailableError | None:
    if variant == "bundle":
        return random_bundle(seed=3)
    if variant == "bundle-without-this-class":
        return random_bundle(seed=3, asset_classes=("equity",))
    if variant == "unavailable":
        return ModelUnavailableError("model bundle at bundled has no readable manifest.json")
    return None


def _lambda_bundle(variant: str) -> ModelBundle | ModelUnavailableError:
    """What the handlers hand the steps: the bundle, or the error that says why there is none."""
    bundle = _bundle(variant)
    return ModelUnavailableError("no model bundle") if bundle is None else bundle


def _via_json(model: type[Any], payload: dict[str, Any]) -> Any:
    return model.model_validate_json(model.model_validate(payload).model_dump_json())


def _market_data(asset: str, t: int) -> MarketData:
    bars, label = _series(asset)
    window = [BarModel.from_domain(b) for b in bars[max(0, t - LOOKBACK + 1) : t + 1]]
    timeframe = datasets()[asset].timeframe
    return MarketData(
        cycle_id="backtest-parity",
        as_of=bars[t].time + timeframe.duration,  # the cycle right after bar t closed
        timeframe=timeframe,
        asset=asset,
        execution_id="arn:aws:states:us-east-1:123456789012:execution:DecisionCycle:parity",
        source=DataSource(provider="replay", dataset=label, synthetic=False, simulated_clock=True),
        bars=window,
        bars_sha256=digest_bars(window),
    )


def _cycle(asset: str, t: int, variant: str) -> tuple[CheckStalenessResult, RegimeResult | None, DecisionRecord | None]:
    """CheckStaleness -> DetectRegime -> Decide, each input rebuilt from JSON as the state machine does."""
    data = _market_data(asset, t)
    staleness = check_staleness(data, clock=_no_wall_clock, params=StrategyParams())
    if staleness.stale:
        return staleness, None, None
    bundle = _lambda_bundle(variant)
    payload = {**data.model_dump(mode="json"), "staleness": staleness.model_dump(mode="json")}
    regime = detect_regime(_via_json(DetectRegimeInput, payload), bundle, FeatureParams())
    decide_input = _via_json(DecideInput, {**payload, "regime": regime.model_dump(mode="json")})
    return staleness, regime, decide(decide_input, bundle, StrategyParams(), ENTRY_THRESHOLD)


def _sampled(asset: str) -> list[int]:
    n = len(_series(asset)[0])
    rng = np.random.default_rng(20240611)
    return sorted({*EDGES, *rng.choice(np.arange(LOOKBACK, n), N_RANDOM, replace=False).tolist()})


def _check(asset: str, variant: str, run_name: StrategyName, expect_model: Callable[[int], str]) -> dict[str, int]:
    result = _backtest(asset, variant)
    run = result.runs[run_name]
    seen: dict[str, int] = {}
    for t in _sampled(asset):
        staleness, regime, record = _cycle(asset, t, variant)
        i = t - result.first_index
        if record is None:  # stale: HoldOnStaleData records HOLD at confidence 1
            assert (run.actions[i], run.confidence[i], run.models[i]) == ("HOLD", 1.0, "stale"), t
            assert staleness.bar_count == min(t + 1, LOOKBACK) < StrategyParams().min_bars
            seen["stale"] = seen.get("stale", 0) + 1
            continue
        assert regime is not None
        assert record.action == run.actions[i], (t, record.reason)
        assert abs(record.confidence - run.confidence[i]) <= 1e-9, t
        assert record.regime == result.regimes[i], t
        assert record.model == run.models[i] == expect_model(t), t
        signals = np.array([record.signals[str(s)] for s in ("trend_following", "mean_reversion", "breakout")])
        assert np.all(np.abs(signals - result.signals[i]) <= 5e-7), t  # the record rounds to 6 places
        if record.model == "meta_controller":
            bundle = _lambda_bundle(variant)
            assert isinstance(bundle, ModelBundle), t
            raw = latest_weights(
                bundle.meta,
                np.asarray(regime.path_features),
                np.asarray(regime.path_posteriors),
            )
            assert np.max(np.abs(raw - run.weights[i])) <= 1e-9, t
            recorded = np.array([record.weights[str(o)] for o in OPTIONS])
            assert np.all(np.abs(recorded - run.weights[i]) <= 5e-7 + 1e-9), t
        else:
            assert record.weights == {}
            assert np.array_equal(run.weights[i], [1 / 3, 1 / 3, 1 / 3, 0.0]), t
        seen[record.model] = seen.get(record.model, 0) + 1
    return seen


def _meta_once_rolled(t: int) -> str:
    # Decide needs roll_bars (24) complete feature rows in the path: 60 warm-up bars + 24 = a window of 84.
    return "meta_controller" if t >= 83 else "naive_router"


@pytest.mark.parametrize("asset", ["BTCUSD", "EURUSD"])
def test_backtest_matches_the_lambdas_decision_with_the_meta_controller(asset: str) -> None:
    # Given a champion bundle and sampled bars of a real series (warm-up edges included)
    # When each bar's cycle runs through check_staleness, detect_regime and decide
    seen = _check(asset, "bundle", StrategyName.META_CONTROLLER, _meta_once_rolled)
    # Then every sampled decision matched, and every path (stale, fallback, meta-controller) was exercised
    assert seen["stale"] >= 3 and seen["naive_router"] >= 3 and seen["meta_controller"] >= N_RANDOM


@pytest.mark.parametrize("variant", ["none", "unavailable", "bundle-without-this-class"])
@pytest.mark.parametrize("asset", ["BTCUSD", "EURUSD"])
def test_backtest_matches_the_naive_router_fallback_when_no_model_can_run(asset: str, variant: str) -> None:
    seen = _check(asset, variant, StrategyName.META_CONTROLLER, lambda t: "naive_router")
    assert seen["naive_router"] >= N_RANDOM and "meta_controller" not in seen
    result = _backtest(asset, variant)
    assert result.bundle_note and set(result.regimes) == {None}


@pytest.mark.parametrize("asset", ["BTCUSD", "EURUSD"])
def test_the_naive_router_row_is_the_runtime_fallback_bar_for_bar(asset: str) -> None:
    # The naive_router strategy (with a bundle loaded) decides exactly as the meta row does without one.
    with_bundle = _backtest(asset, "bundle").runs[StrategyName.NAIVE_ROUTER]
    fallback = _backtest(asset, "none").runs[StrategyName.META_CONTROLLER]
    assert np.array_equal(with_bundle.actions, fallback.actions)
    assert np.array_equal(with_bundle.confidence, fallback.confidence)
    assert np.array_equal(with_bundle.positions, fallback.positions)
