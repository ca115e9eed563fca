"""Small real slices for the training tests: a series, its mixture fitted on the training rows, both envs."""

from __future__ import annotations

from dataclasses import dataclass

from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.regime import RegimeModel
from ffe.training.data import TrainingSeries, holdout, load_series
from ffe.training.meta_env import EnvData, holdout_envs
from ffe.training.regime import fit_regime


@dataclass(frozen=True)
class Prepared:
    series: TrainingSeries
    regime: RegimeModel
    train: EnvData
    test: EnvData


def prepare(symbol: str, bars: int) -> Prepared:
    series = load_series(symbol).slice(0, bars)
    train_rows, _ = holdout(len(series))
    regime = fit_regime(feature_matrix(series.closes, FeatureParams())[train_rows], series.asset_class, "t", 7).model
    train, test = holdout_envs(series, regime)
    return Prepared(series, regime, train, test)
