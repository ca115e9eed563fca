import json

import numpy as np
import pytest
from sklearn.mixture import BayesianGaussianMixture

from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.regime import RegimeModel, posterior
from ffe.training.data import holdout, load_series
from ffe.training.regime import fit_regime


def _fit(symbol: str) -> tuple[np.ndarray, RegimeModel, BayesianGaussianMixture, np.ndarray]:
    series = load_series(symbol)
    features = feature_matrix(series.closes, FeatureParams())
    train, _ = holdout(len(series))
    model, gmm, order = fit_regime(features[train], series.asset_class, "test-1", seed=7)
    return features, model, gmm, order


@pytest.fixture(scope="module")
def btc() -> tuple[np.ndarray, RegimeModel, BayesianGaussianMixture]:
    return _fit("BTCUSD")[:3]


@pytest.mark.parametrize("symbol", ["BTCUSD", "EURUSD"])
def test_numpy_posterior_equals_predict_proba_on_fitted_and_held_out_rows(symbol: str) -> None:
    # Given a mixture fitted on the training rows only
    features, model, gmm, order = _fit(symbol)
    rows = features[np.all(np.isfinite(features), axis=1)]  # every complete row, held-out ones included
    _, test = holdout(len(features))
    assert rows.shape[0] > test.stop - test.start

    # When the Lambda's numpy posterior runs on the export
    ours = posterior(model, rows)

    # Then it is scikit-learn's predict_proba on the standardized rows
    theirs = gmm.predict_proba((rows - model.scaler_mean) / model.scaler_scale)[:, order]  # canonical order
    assert np.max(np.abs(ours - theirs)) <= 1e-9
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-12)


def test_export_survives_a_json_round_trip_bit_for_bit(btc: tuple[np.ndarray, RegimeModel, object]) -> None:
    features, model, _ = btc
    restored = RegimeModel.from_dict(json.loads(json.dumps(model.to_dict())))
    rows = features[np.all(np.isfinite(features), axis=1)]
    np.testing.assert_array_equal(posterior(restored, rows), posterior(model, rows))
    assert restored.labels == model.labels and restored.version == "test-1"


def test_export_standardizes_on_the_training_rows_and_labels_every_component_uniquely(
    btc: tuple[np.ndarray, RegimeModel, object],
) -> None:
    features, model, _ = btc
    train, _ = holdout(len(features))
    fitted = features[train][np.all(np.isfinite(features[train]), axis=1)]
    np.testing.assert_allclose(model.scaler_mean, fitted.mean(axis=0))
    np.testing.assert_allclose(model.scaler_scale, fitted.std(axis=0))
    assert model.n_components == 6
    assert len(set(model.labels)) == model.n_components
    assert all(label.split(",")[0] in {"uptrend", "downtrend", "range"} for label in model.labels)
    # the stick-breaking weights are a (sub-)probability vector
    assert np.exp(model.log_weights).sum() <= 1.0 + 1e-12


def test_components_are_ordered_from_most_bearish_to_most_bullish() -> None:
    _, model, gmm, order = _fit("EURUSD")
    momentum = model.means[:, 0] * model.scaler_scale[0] + model.scaler_mean[0]
    assert np.all(np.diff(momentum) >= 0) and sorted(order.tolist()) == list(range(gmm.n_components))


def test_fit_regime_rejects_the_wrong_number_of_features() -> None:
    with pytest.raises(ValueError, match="features"):
        fit_regime(np.zeros((100, 2)), "fx", "v", seed=1)


def test_fit_regime_is_reproducible_from_its_seed() -> None:
    series = load_series("EURUSD").slice(0, 1500)
    features = feature_matrix(series.closes, FeatureParams())
    first = fit_regime(features, "fx", "v", seed=3).model
    second = fit_regime(features, "fx", "v", seed=3).model
    assert first.to_dict() == second.to_dict()
