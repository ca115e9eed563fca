"""Market regime: the posterior of a Dirichlet-process Gaussian mixture over the feature space.

The mixture is fitted offline with scikit-learn's ``BayesianGaussianMixture`` (``ffe.training.regime``);
what runs here is numpy only. The export folds every term of scikit-learn's ``predict_proba`` that depends
on the fit alone (the stick-breaking log weights and the Wishart/precision corrections, which need scipy's
digamma) into two per-component vectors, so the posterior below is the same arithmetic on the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ffe.domain.errors import InvalidInputError

REGIME_FORMAT = "ffe.regime/1"


@dataclass(frozen=True, slots=True)
class _Terms:
    components: tuple[tuple[NDArray[np.float64], NDArray[np.float64]], ...]  # (precision Cholesky, mean @ it) per k
    log_det: NDArray[np.float64]  # (K,) log det of each precision Cholesky
    log_2pi_f: np.float64  # F * log(2π)


@dataclass(frozen=True)
class RegimeModel:
    """Exported mixture for one asset class; ``K`` components over ``F`` standardized features."""

    asset_class: str
    version: str
    feature_names: tuple[str, ...]
    scaler_mean: NDArray[np.float64]  # (F,)
    scaler_scale: NDArray[np.float64]  # (F,)
    means: NDArray[np.float64]  # (K, F), standardized space
    precisions_cholesky: NDArray[np.float64]  # (K, F, F)
    log_weights: NDArray[np.float64]  # (K,) scikit-learn's _estimate_log_weights()
    log_prob_offset: NDArray[np.float64]  # (K,) the fit-only terms of _estimate_log_prob()
    labels: tuple[str, ...]  # (K,) human names, e.g. "uptrend, calm"

    @property
    def n_components(self) -> int:
        return len(self.labels)

    @cached_property
    def terms(self) -> _Terms:
        """What :func:`posterior` computes from the fit alone, computed once: the same expressions, the same bits."""
        components = tuple((p, np.dot(mu, p)) for mu, p in zip(self.means, self.precisions_cholesky, strict=True))
        return _Terms(
            components=components,
            log_det=np.sum(np.log(np.diagonal(self.precisions_cholesky, axis1=1, axis2=2)), axis=1),
            log_2pi_f=len(self.feature_names) * np.log(2 * np.pi),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REGIME_FORMAT,
            "asset_class": self.asset_class,
            "version": self.version,
            "feature_names": list(self.feature_names),
            "scaler_mean": self.scaler_mean.tolist(),
            "scaler_scale": self.scaler_scale.tolist(),
            "means": self.means.tolist(),
            "precisions_cholesky": self.precisions_cholesky.tolist(),
            "log_weights": self.log_weights.tolist(),
            "log_prob_offset": self.log_prob_offset.tolist(),
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RegimeModel:
        """Validate an exported mixture: format, shapes and finiteness.

        Raises:
            InvalidInputError: naming what is wrong with the artifact.
        """
        if raw.get("format") != REGIME_FORMAT:
            raise InvalidInputError(f"regime artifact format {raw.get('format')!r}, expected {REGIME_FORMAT!r}")
        try:
            names = tuple(str(n) for n in raw["feature_names"])
            labels = tuple(str(n) for n in raw["labels"])
            f, k = len(names), len(labels)
            model = cls(
                asset_class=str(raw["asset_class"]),
                version=str(raw["version"]),
                feature_names=names,
                scaler_mean=_array(raw, "scaler_mean", (f,)),
                scaler_scale=_array(raw, "scaler_scale", (f,)),
                means=_array(raw, "means", (k, f)),
                precisions_cholesky=_array(raw, "precisions_cholesky", (k, f, f)),
                log_weights=_array(raw, "log_weights", (k,)),
                log_prob_offset=_array(raw, "log_prob_offset", (k,)),
                labels=labels,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"regime artifact is malformed: {exc!r}") from exc
        if k == 0 or np.any(model.scaler_scale <= 0):
            raise InvalidInputError("regime artifact needs at least one component and positive scales")
        return model


def posterior(model: RegimeModel, features: NDArray[np.float64]) -> NDArray[np.float64]:
    """Posterior regime probabilities, one row per feature row; rows sum to 1.

    Matches ``BayesianGaussianMixture.predict_proba`` on the standardized features.
    """
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if x.shape[1] != len(model.feature_names):
        raise ValueError(f"expected {len(model.feature_names)} features, got {x.shape[1]}")
    z = (x - model.scaler_mean) / model.scaler_scale
    # _estimate_log_gaussian_prob (covariance_type="full"), term for term; the terms of the fit alone are computed
    # once per model (``_Terms``), the same numbers the expressions below them would give on every call.
    terms = model.terms
    log_prob = np.empty((z.shape[0], model.n_components))
    for k, (prec_chol, mu_prec) in enumerate(terms.components):
        y = np.dot(z, prec_chol) - mu_prec
        log_prob[:, k] = np.square(y).sum(axis=1)
    log_gauss = -0.5 * (terms.log_2pi_f + log_prob) + terms.log_det
    weighted = log_gauss + model.log_prob_offset + model.log_weights
    norm = _logsumexp(weighted)
    return np.exp(weighted - norm[:, np.newaxis])


def dominant(model: RegimeModel, probabilities: NDArray[np.float64]) -> str:
    """The label of the most probable regime."""
    return model.labels[int(np.argmax(probabilities))]


def _logsumexp(a: NDArray[np.float64]) -> NDArray[np.float64]:
    # scipy.special.logsumexp(axis=1) for finite input, as scikit-learn calls it.
    a_max = np.max(a, axis=1, keepdims=True)
    out: NDArray[np.float64] = np.log(np.sum(np.exp(a - a_max), axis=1)) + a_max[:, 0]
    return out


def _array(raw: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> NDArray[np.float64]:
    value = np.asarray(raw[key], dtype=np.float64)
    if value.shape != shape:
        raise ValueError(f"{key} has shape {value.shape}, expected {shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{key} has non-finite values")
    return value


def regime_label(mean_features: Mapping[str, float]) -> str:
    """A readable name for a component from its mean in raw feature units (direction, then volatility)."""
    momentum = mean_features.get("momentum", 0.0)
    vol = mean_features.get("volatility", 0.0)
    strength = mean_features.get("trend_strength", 0.0)
    if strength >= 0.3 and abs(momentum) >= 0.5:
        direction = "uptrend" if momentum > 0 else "downtrend"
    else:
        direction = "range"
    # volatility is log(short σ / long σ): ±0.1 is a 10 % rise or fall against the longer window.
    mood = "volatile" if vol > 0.1 else "calm" if vol < -0.1 else "steady"
    return f"{direction}, {mood}"
