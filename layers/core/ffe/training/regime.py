"""Fitting the regime mixture and exporting it to the numpy form the Lambdas evaluate.

A Dirichlet-process prior lets the fit switch off components the data does not need, so ``n_components`` is
an upper bound. The export folds the fit-only terms of scikit-learn's variational log-likelihood (which need
scipy's digamma) into ``log_prob_offset``, so ``ffe.domain.regime.posterior`` reproduces ``predict_proba``
without scipy or scikit-learn.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.special import digamma
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

from ffe.domain.features import FEATURE_NAMES
from ffe.domain.regime import RegimeModel, regime_label


class RegimeFit(NamedTuple):
    model: RegimeModel
    gmm: BayesianGaussianMixture
    order: NDArray[np.intp]  # model component k is gmm component order[k]


def fit_regime(
    features_raw: NDArray[np.float64],
    asset_class: str,
    version: str,
    seed: int,
    n_components: int = 6,
) -> RegimeFit:
    """Fit the mixture on the complete rows of ``features_raw`` (columns in ``FEATURE_NAMES`` order).

    Raises:
        ValueError: wrong column count, or fewer complete rows than components.
    """
    x = np.asarray(features_raw, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"expected (N, {len(FEATURE_NAMES)}) features, got {x.shape}")
    x = x[np.all(np.isfinite(x), axis=1)]
    if x.shape[0] < max(n_components, 2):
        raise ValueError(f"{x.shape[0]} complete feature rows cannot fit {n_components} components")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature stays 0 after scaling, as StandardScaler does
    gmm = BayesianGaussianMixture(
        n_components=n_components,
        covariance_type="full",
        weight_concentration_prior_type="dirichlet_process",
        random_state=seed,
        max_iter=500,
        n_init=1,
    )
    # Three features: BLAS threads only add hand-off latency to the 3x3 solves (1.5-3 s against 0.4 s on 2 cores).
    with threadpool_limits(limits=1):
        gmm.fit((x - mean) / scale)
    raw_means = np.asarray(gmm.means_) * scale + mean
    # Canonical order: component k is the k-th most bearish (lowest mean momentum) in every asset class, so the
    # one meta-controller that reads the posteriors of every class's mixture sees comparable inputs.
    order = np.argsort(raw_means[:, FEATURE_NAMES.index("momentum")], kind="stable")
    model = RegimeModel(
        asset_class=asset_class,
        version=version,
        feature_names=FEATURE_NAMES,
        scaler_mean=mean,
        scaler_scale=scale,
        means=np.asarray(gmm.means_, dtype=np.float64)[order],
        precisions_cholesky=np.asarray(gmm.precisions_cholesky_, dtype=np.float64)[order],
        log_weights=np.asarray(gmm._estimate_log_weights(), dtype=np.float64)[order],
        log_prob_offset=log_prob_offset(gmm)[order],
        labels=_unique([regime_label(dict(zip(FEATURE_NAMES, m.tolist(), strict=True))) for m in raw_means[order]]),
    )
    return RegimeFit(model, gmm, order)


def log_prob_offset(gmm: BayesianGaussianMixture) -> NDArray[np.float64]:
    """The per-component terms of ``BayesianGaussianMixture._estimate_log_prob`` that do not depend on X.

    Written as scikit-learn writes them (``sklearn/mixture/_bayesian_mixture.py``), so the sum is the same
    floating-point number: ``-0.5·F·log(ν_k) + 0.5·(log Λ_k - F/β_k)``.
    """
    n_features = gmm.means_.shape[1]
    dof = np.asarray(gmm.degrees_of_freedom_, dtype=np.float64)
    log_lambda = n_features * np.log(2.0) + np.sum(digamma(0.5 * (dof - np.arange(0, n_features)[:, np.newaxis])), 0)
    out: NDArray[np.float64] = -0.5 * n_features * np.log(dof) + 0.5 * (
        log_lambda - n_features / np.asarray(gmm.mean_precision_, dtype=np.float64)
    )
    return out


def _unique(labels: list[str]) -> tuple[str, ...]:
    """Append `` #k`` (the component index) to every label that more than one component shares."""
    return tuple(f"{label} #{k}" if labels.count(label) > 1 else label for k, label in enumerate(labels))
