"""The numpy the Lambdas run: market features, the meta-controller's weights, the blend, the yardsticks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ffe.adapters.replay import load_bars
from ffe.domain.ensemble import naive_router, weighted_blend
from ffe.domain.errors import InvalidInputError
from ffe.domain.features import FeatureParams, feature_matrix, latest_features
from ffe.domain.meta import OPTIONS, MetaPolicy, latest_weights, rolled_weights, step
from ffe.domain.models import Action
from ffe.domain.performance import churn_rate, max_disruption, max_drawdown, sharpe, sortino, turnover
from ffe.domain.regime import RegimeModel, posterior
from ffe.domain.strategies import Strategy, StrategyParams, bar_arrays, score_all, score_matrix
from tests.fakes.models import random_meta_policy, random_regime_model

P = FeatureParams()
BTC = load_bars("BTCUSD_1h.csv.gz")
CLOSES = np.array([b.close for b in BTC])


def test_features_of_a_straight_line_and_of_a_zigzag() -> None:
    line = np.exp(np.linspace(0.0, 0.5, 100))  # constant log return: no noise, perfectly efficient
    row = feature_matrix(line, P)[-1]
    assert row[2] == pytest.approx(1.0) and row[1] == pytest.approx(0.0, abs=1e-9) and row[0] > 1e6
    zigzag = np.array([100.0 + (1.0 if i % 2 else -1.0) for i in range(100)])
    assert feature_matrix(zigzag, P)[-1][2] == pytest.approx(0.0)  # travels far, goes nowhere


def test_features_are_nan_during_warm_up_only() -> None:
    f = feature_matrix(CLOSES[:200], P)
    assert np.isnan(f[: P.warmup - 1]).all() and np.isfinite(f[P.warmup - 1 :]).all()


@settings(max_examples=30, deadline=None)
@given(t=st.integers(min_value=P.warmup, max_value=len(CLOSES) - 1), extra=st.integers(min_value=0, max_value=300))
def test_a_feature_row_depends_only_on_its_own_window(t: int, extra: int) -> None:
    # The backtester computes features over years, the Lambda over its last bars: the same bits.
    whole = feature_matrix(CLOSES, P)[t]
    window = feature_matrix(CLOSES[max(0, t + 1 - P.warmup - extra) : t + 1], P)[-1]
    assert np.array_equal(whole, window) and np.array_equal(whole, latest_features(CLOSES[: t + 1], P))


@settings(max_examples=30, deadline=None)
@given(t=st.integers(min_value=StrategyParams().min_bars, max_value=len(BTC) - 1))
def test_strategy_scores_of_one_bar_equal_the_whole_series_row(t: int) -> None:
    whole = score_matrix(*bar_arrays(BTC), StrategyParams())[t]
    one = score_all(BTC[: t + 1], StrategyParams())
    assert np.array_equal(whole, [one[s] for s in Strategy])


def test_features_refuse_bad_closes() -> None:
    with pytest.raises(ValueError, match="finite and positive"):
        feature_matrix(np.array([1.0, -1.0, 2.0]), P)


@settings(max_examples=50, deadline=None)
@given(
    features=arrays(np.float64, (30, 3), elements=st.floats(-50, 50)),
    seed=st.integers(0, 10_000),
)
def test_weights_are_a_convex_combination_for_any_input(features: np.ndarray, seed: int) -> None:
    policy = random_meta_policy(seed=seed)
    posteriors = np.random.default_rng(seed).dirichlet(np.ones(policy.n_regimes), 30)
    w = rolled_weights(policy, features, posteriors)
    done = w[policy.roll_bars - 1 :]
    assert np.isnan(w[: policy.roll_bars - 1]).all()
    assert np.all(done >= 0) and np.max(np.abs(done.sum(axis=1) - 1.0)) <= 1e-3


def test_rolled_weights_for_every_row_equal_a_single_decision() -> None:
    policy = random_meta_policy(seed=4)
    features = feature_matrix(CLOSES[:400], P)
    posteriors = np.random.default_rng(1).dirichlet(np.ones(policy.n_regimes), 400)
    all_rows = rolled_weights(policy, features, posteriors)
    for t in (P.warmup - 1 + policy.roll_bars - 1, 250, 399):
        one = latest_weights(policy, features[: t + 1], posteriors[: t + 1])
        np.testing.assert_allclose(all_rows[t], one, atol=1e-12)
    assert np.isnan(all_rows[P.warmup + policy.roll_bars - 3]).all()  # its roll would touch the warm-up


def _stepped(policy: MetaPolicy, features: np.ndarray, posteriors: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The roll written plainly: ``step`` after ``step`` on the rows ``ts`` look back to, from equal weights."""
    w = np.full((ts.size, len(OPTIONS)), 1.0 / len(OPTIONS))
    for back in range(policy.roll_bars - 1, -1, -1):
        w = step(policy, features[ts - back], posteriors[ts - back], w)
    return w


@pytest.mark.parametrize("seed", [0, 4, 11])
def test_the_rolls_are_steps_bit_for_bit(seed: int) -> None:
    # What the backtester (every row) and a decision (the last row) compute is the policy stepped, to the bit.
    policy = random_meta_policy(seed=seed)
    features = feature_matrix(CLOSES[:500], P)
    posteriors = np.random.default_rng(seed).dirichlet(np.ones(policy.n_regimes), 500)
    rolled = rolled_weights(policy, features, posteriors)
    ts = np.arange(P.warmup - 2 + policy.roll_bars, 500)
    assert np.array_equal(rolled[ts], _stepped(policy, features, posteriors, ts))
    for t in (ts[0], 250, 499):
        one = latest_weights(policy, features[: t + 1], posteriors[: t + 1])
        assert np.array_equal(one, _stepped(policy, features, posteriors, np.array([t]))[0])
    assert np.isnan(latest_weights(policy, features[: ts[0]], posteriors[: ts[0]])).all()  # touches the warm-up


def _posterior_inline(model: RegimeModel, x: np.ndarray) -> np.ndarray:
    """scikit-learn's predict_proba term for term, every term computed on the call (what ``posterior`` caches)."""
    z = (x - model.scaler_mean) / model.scaler_scale
    log_det = np.sum(np.log(np.diagonal(model.precisions_cholesky, axis1=1, axis2=2)), axis=1)
    log_prob = np.empty((z.shape[0], model.n_components))
    for k, (mu, prec_chol) in enumerate(zip(model.means, model.precisions_cholesky, strict=True)):
        log_prob[:, k] = np.sum(np.square(np.dot(z, prec_chol) - np.dot(mu, prec_chol)), axis=1)
    weighted = -0.5 * (z.shape[1] * np.log(2 * np.pi) + log_prob) + log_det + model.log_prob_offset + model.log_weights
    top = np.max(weighted, axis=1, keepdims=True)
    return np.exp(weighted - (np.log(np.sum(np.exp(weighted - top), axis=1)) + top[:, 0])[:, np.newaxis])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_posterior_is_the_formula_bit_for_bit(seed: int) -> None:
    model = random_regime_model("crypto", seed=seed)
    rows = feature_matrix(CLOSES[:400], P)[P.warmup - 1 :]
    assert np.array_equal(posterior(model, rows), _posterior_inline(model, rows))
    assert np.array_equal(posterior(model, rows[-24:]), _posterior_inline(model, rows[-24:]))


def test_smoothing_bounds_how_far_weights_move_in_one_bar() -> None:
    policy = random_meta_policy(seed=9)
    features = feature_matrix(CLOSES[:600], P)
    posteriors = np.random.default_rng(2).dirichlet(np.ones(policy.n_regimes) * 0.1, 600)  # jumpy regimes
    w = rolled_weights(policy, features, posteriors)
    labels = np.argmax(posteriors, axis=1)
    rows = ~np.isnan(w[:, 0])
    assert max_disruption(w[rows], labels[rows]) <= policy.smoothing


def test_policy_artifact_is_validated() -> None:
    raw = random_meta_policy().to_dict()
    assert MetaPolicy.from_dict(raw).to_dict() == raw
    with pytest.raises(InvalidInputError, match="options"):
        MetaPolicy.from_dict({**raw, "options": ["trend_following", "flat"]})
    with pytest.raises(InvalidInputError, match="last layer must output 4 logits"):
        MetaPolicy.from_dict({**raw, "layers": raw["layers"][:1]})


def test_weighted_blend_flat_weight_shrinks_conviction() -> None:
    scores = {Strategy.TREND_FOLLOWING: 0.6, Strategy.MEAN_REVERSION: 0.3, Strategy.BREAKOUT: 0.0}
    equal = dict(zip([str(o) for o in OPTIONS], [1 / 3, 1 / 3, 1 / 3, 0.0], strict=True))
    assert weighted_blend(scores, equal).action is naive_router(scores).action is Action.BUY
    assert weighted_blend(scores, equal).score == pytest.approx(naive_router(scores).score)
    mostly_flat = dict(zip([str(o) for o in OPTIONS], [0.1, 0.1, 0.1, 0.7], strict=True))
    held = weighted_blend(scores, mostly_flat)
    assert held.action is Action.HOLD and held.score == pytest.approx(0.09)
    with pytest.raises(ValueError, match="sum to 1"):
        weighted_blend(scores, {"trend_following": 0.5})


def test_yardsticks_on_constructed_paths() -> None:
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 130.0])) == pytest.approx(0.25)
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    r = np.array([0.01, -0.02, 0.03, 0.01])
    assert sharpe(r, 252) == pytest.approx(np.mean(r) / np.std(r, ddof=1) * math.sqrt(252))
    assert sortino(r, 252) == pytest.approx(np.mean(r) / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(252))
    assert sharpe(np.zeros(10), 252) == 0.0
    positions = np.array([0.0, 1.0, 1.0, 0.0, 0.0, -1.0, 1.0])
    assert churn_rate(positions) == pytest.approx(4 / 6)  # entry, exit, entry short, flip long
    assert churn_rate(np.ones(10)) == 0.0
    assert turnover(np.array([0.5, 0.5, 0.0])) == pytest.approx((0.5 + 0 + 0.5) / 3)
    hard = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)
    assert max_disruption(hard, np.array([0, 0, 1])) == 1.0 and max_disruption(hard, np.array([0, 0, 0])) == 0.0


@pytest.mark.parametrize("columns", [1, 4, 7, 8, 11])
def test_the_softmax_is_numpys_reductions_bit_for_bit(columns: int) -> None:
    # meta._softmax folds over the columns; numpy's max and sum along each row are the reference, to the bit.
    from ffe.domain.meta import _softmax

    rng = np.random.default_rng(columns)
    x = rng.normal(size=(20_000, columns)) * rng.choice([1e-3, 1.0, 30.0, 700.0], size=(20_000, 1))
    x[:50] = 0.0  # ties and signed zeros
    x[50:60, 0] = -0.0
    e = np.exp(x - x.max(axis=1, keepdims=True))
    expected = e / e.sum(axis=1, keepdims=True)
    assert _softmax(x.copy()).tobytes() == expected.tobytes()


def test_a_roll_past_a_gap_in_the_rows_is_the_steps_bit_for_bit() -> None:
    policy = random_meta_policy(seed=5)
    features = feature_matrix(CLOSES[:400], P)
    features[300] = np.nan  # rows whose roll touches row 300 cannot roll: the rollable rows are two runs
    posteriors = np.random.default_rng(5).dirichlet(np.ones(policy.n_regimes), 400)
    rolled = rolled_weights(policy, features, posteriors)
    ts = np.flatnonzero(np.isfinite(rolled).all(axis=1))
    assert ts.size and np.any(np.diff(ts) > 1)
    assert np.array_equal(rolled[ts], _stepped(policy, features, posteriors, ts))
    assert np.isnan(rolled[300 : 300 + policy.roll_bars]).all()
