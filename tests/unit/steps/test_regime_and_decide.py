"""DetectRegime then Decide on real bars: the meta-controller decides when the champion can run, the
naive router decides (and says why) when it cannot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from ffe.adapters.models import ModelBundle, ModelUnavailableError
from ffe.adapters.replay import ReplayProvider
from ffe.contracts import AssetTask, DecideInput, DetectRegimeInput, RegimeResult
from ffe.domain.features import FeatureParams
from ffe.domain.meta import OPTIONS, latest_weights
from ffe.domain.models import Timeframe
from ffe.domain.regime import posterior
from ffe.domain.strategies import StrategyParams
from ffe.steps.fetch import fetch_market_data
from ffe.steps.regime import detect_regime
from ffe.steps.staleness import check_staleness
from tests.fakes.models import random_bundle
from tests.reference_decision import decide

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
BUNDLE = random_bundle(seed=3)


def market(asset: str = "BTCUSD", lookback: int = 120) -> dict[str, Any]:
    task = AssetTask(cycle_id="c-1", as_of=AS_OF, timeframe=Timeframe.H1, asset=asset)
    data = fetch_market_data(task, ReplayProvider(), lookback)
    staleness = check_staleness(data, clock=lambda: AS_OF, params=StrategyParams())
    return {**data.model_dump(mode="json"), "staleness": staleness.model_dump(mode="json")}


def regime_for(payload: dict[str, Any], bundle: ModelBundle | ModelUnavailableError = BUNDLE) -> RegimeResult:
    return detect_regime(DetectRegimeInput.model_validate(payload), bundle, FeatureParams())


def test_regime_is_the_posterior_of_the_asset_class_model_over_the_last_bars() -> None:
    payload = market()
    result = regime_for(payload)
    model = BUNDLE.regimes["crypto"]
    assert result.available and result.asset_class == "crypto" and result.model_version == BUNDLE.version
    assert len(result.path_features) == len(result.path_posteriors) == BUNDLE.meta.roll_bars
    expected = posterior(model, np.asarray(result.path_features))
    np.testing.assert_allclose(result.path_posteriors, expected, atol=1e-12)
    assert result.label == model.labels[int(np.argmax(expected[-1]))]
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(result.features) == {"momentum", "volatility", "trend_strength"}


def test_decide_uses_the_meta_controller_weights_when_the_champion_can_run() -> None:
    payload = market()
    regime = regime_for(payload)
    record = decide(
        DecideInput.model_validate({**payload, "regime": regime.model_dump(mode="json")}),
        BUNDLE,
        StrategyParams(),
        0.15,
    )
    expected = latest_weights(BUNDLE.meta, np.asarray(regime.path_features), np.asarray(regime.path_posteriors))
    assert record.model == "meta_controller" and record.model_version == BUNDLE.version
    assert list(record.weights) == [str(o) for o in OPTIONS]
    np.testing.assert_allclose(list(record.weights.values()), expected, atol=1e-6)
    assert sum(record.weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert record.regime == regime.label and record.regime_probabilities == regime.probabilities
    assert record.reason.startswith("meta-controller blend")


@pytest.mark.parametrize(
    ("bundle", "regime_change", "why"),
    [
        (ModelUnavailableError("model bundle at s3://b/champion has no manifest.json"), None, "has no manifest.json"),
        (BUNDLE, {"available": False, "reason": "regime features need 61 bars, got 40"}, "regime unavailable"),
        (BUNDLE, {"model_version": "older"}, "regime from model older"),
        (BUNDLE, "missing", "no regime was detected"),
    ],
    ids=["no-bundle", "no-regime", "version-skew", "regime-missing"],
)
def test_decide_falls_back_to_the_naive_router_and_says_why(
    bundle: ModelBundle | ModelUnavailableError, regime_change: dict[str, Any] | str | None, why: str
) -> None:
    payload = market()
    regime = regime_for(payload).model_dump(mode="json")
    if isinstance(regime_change, str):  # "missing"
        inp = DecideInput.model_validate(payload)
    else:
        if regime_change and regime_change.get("available") is False:
            regime = {"available": False, "reason": regime_change["reason"]}
        elif regime_change:
            regime = {**regime, **regime_change}
        inp = DecideInput.model_validate({**payload, "regime": regime})
    record = decide(inp, bundle, StrategyParams(), 0.15)
    assert record.model == "naive_router" and record.weights == {}
    assert record.reason.startswith("naive router fallback (") and why in record.reason
    assert "equal-weight blend" in record.reason


def test_regime_unavailable_without_a_bundle_or_enough_bars() -> None:
    gone = ModelUnavailableError("model bundle at bundled is unusable: meta-controller artifact is malformed")
    assert regime_for(market(), gone) == RegimeResult(available=False, reason=str(gone))
    short = regime_for(market(lookback=55))
    assert not short.available and "need 61 bars, got 55" in short.reason


def test_regime_unavailable_for_an_asset_class_the_bundle_lacks() -> None:
    fx_only = random_bundle(seed=3, asset_classes=("fx",))
    result = regime_for(market("ETHUSD"), fx_only)
    assert not result.available and "no regime model for crypto" in result.reason
