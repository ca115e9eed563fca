"""The meta-controller's environment and its deterministic evaluation.

An environment (``EnvData``) is one series as the policy sees it: for every bar the features, the regime
posterior and the three strategy scores, computed by the same domain functions as a decision, and the *next*
bar's return. At bar ``t`` the policy sees row ``t`` (bars up to ``t`` only); its option weights give the
position ``clip(Σ_i w_i · score_i, -1, 1)`` (flat scores 0), which earns the next bar's return less
``cost_per_turn · |Δposition|``. Deterministic evaluation acts as a decision does: the weights are rolled over
``roll_bars`` from equal weights (``ffe.domain.meta.rolled_weights``), and the blended score ``s`` trades only
when ``|s|`` exceeds ``entry_threshold`` and then holds ``s`` (long or short, sized by confidence); inside the
dead band it is flat. The continuous position the default reward trains on is reported beside it
(``*_continuous``), and ``episode_return`` scores a weight path with the training reward (``ffe.training.reinforce``,
on the position ``MetaTrainConfig.reward_position`` names).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.meta import OPTIONS, MetaPolicy, rolled_weights
from ffe.domain.performance import (
    churn_rate,
    disruption,
    max_disruption,
    max_drawdown,
    sharpe,
    turnover,
)
from ffe.domain.regime import RegimeModel, posterior
from ffe.domain.strategies import STRATEGIES, StrategyParams, score_matrix
from ffe.training.data import TrainingSeries, holdout
from ffe.training.meta_config import MetaTrainConfig

N_OPTIONS = len(OPTIONS)
N_STRATEGIES = len(STRATEGIES)  # the options before FLAT; FLAT scores 0
EQUAL_BLEND = np.array([1.0 / 3, 1.0 / 3, 1.0 / 3, 0.0])  # the naive equal-weight blend, as option weights


@dataclass(eq=False)
class EnvData:
    """One series as the meta-controller sees it; rows before ``scored_from`` are history only (never scored)."""

    features: NDArray[np.float64]  # (T, F) raw
    posteriors: NDArray[np.float64]  # (T, K)
    scores: NDArray[np.float64]  # (T, 3) in STRATEGIES order
    returns: NDArray[np.float64]  # (T,) close[t+1]/close[t] - 1, NaN where the next close is not in this env
    periods_per_year: float
    name: str
    scored_from: int = 0

    def __len__(self) -> int:
        return int(self.returns.size)

    @property
    def n_regimes(self) -> int:
        return int(self.posteriors.shape[1])

    @property
    def valid(self) -> NDArray[np.bool_]:
        """Rows that can be traded and scored: every input and the next return are known."""
        ok = (
            np.all(np.isfinite(self.features), axis=1)
            & np.all(np.isfinite(self.posteriors), axis=1)
            & np.all(np.isfinite(self.scores), axis=1)
            & np.isfinite(self.returns)
        )
        ok[: self.scored_from] = False
        return ok

    def slice(self, start: int, stop: int, context: int = 0) -> EnvData:
        """Rows ``start..stop-1`` scored, with up to ``context`` earlier rows kept as history.

        The last row's return is dropped: it would need the close after ``stop``, which is not in the slice.
        """
        lo = max(0, start - context)
        returns = self.returns[lo:stop].copy()
        if returns.size:
            returns[-1] = np.nan
        return EnvData(
            features=self.features[lo:stop],
            posteriors=self.posteriors[lo:stop],
            scores=self.scores[lo:stop],
            returns=returns,
            periods_per_year=self.periods_per_year,
            name=f"{self.name}[{start}:{stop}]",
            scored_from=max(start, self.scored_from) - lo,
        )

    def return_scale(self) -> float:
        """Standard deviation of the one-bar returns on the scored rows (the reward's unit of risk)."""
        r = self.returns[self.valid]
        sd = float(np.std(r)) if r.size > 1 else 0.0
        return sd if sd > 0 else 1.0


def build_env(
    series: TrainingSeries,
    regime: RegimeModel,
    feature_params: FeatureParams | None = None,
    strategy_params: StrategyParams | None = None,
) -> EnvData:
    """The meta-controller's inputs for every bar of ``series``, computed by the same domain functions as a decision."""
    features = feature_matrix(series.closes, feature_params or FeatureParams())
    complete = np.all(np.isfinite(features), axis=1)
    posteriors = np.full((len(series), regime.n_components), np.nan)
    if complete.any():
        posteriors[complete] = posterior(regime, features[complete])
    returns = np.full(len(series), np.nan)
    returns[:-1] = series.closes[1:] / series.closes[:-1] - 1.0
    return EnvData(
        features=features,
        posteriors=posteriors,
        scores=score_matrix(series.highs, series.lows, series.closes, strategy_params or StrategyParams()),
        returns=returns,
        periods_per_year=series.periods_per_year,
        name=f"{series.symbol}[{series.offset}:{series.offset + len(series)}]",
    )


def holdout_envs(
    series: TrainingSeries, regime: RegimeModel, fraction: float = 0.25, context: int = 64
) -> tuple[EnvData, EnvData]:
    """``(train, test)`` environments of one series; the test one keeps ``context`` training rows as history.

    Features and scores look back only, so computing them over the whole series and then splitting gives
    the held-out rows exactly what a live decision would have seen. ``regime`` must be fitted on the
    training rows alone.
    """
    env = build_env(series, regime)
    train, test = holdout(len(env), fraction)
    return env.slice(train.start, train.stop), env.slice(test.start, test.stop, context=context)


def regime_count(envs: Sequence[EnvData]) -> int:
    """The number of regimes every env of ``envs`` shares (one policy serves them all); ValueError otherwise."""
    counts = {env.n_regimes for env in envs}
    if len(counts) != 1:
        raise ValueError(f"every environment needs the same number of regimes, got {sorted(counts)}")
    return counts.pop()


# --- evaluation ---------------------------------------------------------------------------------------------


def evaluate(
    policy: MetaPolicy,
    env: EnvData,
    entry_threshold: float = 0.15,
    cost_per_turn: float = MetaTrainConfig.cost_per_turn,
) -> dict[str, float]:
    """Deterministic figures of the numpy policy on the scored rows of ``env`` (see the module docstring)."""
    return evaluate_weights(rolled_weights(policy, env.features, env.posteriors), env, entry_threshold, cost_per_turn)


def equal_weights(env: EnvData) -> NDArray[np.float64]:
    """The naive equal-weight blend's weights for every row of ``env``."""
    return np.tile(EQUAL_BLEND, (len(env), 1))


def evaluate_weights(
    weights: NDArray[np.float64],
    env: EnvData,
    entry_threshold: float = 0.15,
    cost_per_turn: float = MetaTrainConfig.cost_per_turn,
) -> dict[str, float]:
    """Figures of any ``(T, 4)`` weight path on the scored rows of ``env`` where the weights are defined.

    ``sharpe``, ``total_return``, ``max_drawdown``, ``churn_rate`` and ``turnover`` are for the decision's
    position (the blend inside ``±entry_threshold`` is flat); ``*_continuous`` for the trained position.
    ``max_disruption`` is the largest weight change on a bar where the dominant regime changed.
    """
    rows = env.valid & np.all(np.isfinite(weights), axis=1)
    w, scores, returns = weights[rows], env.scores[rows], env.returns[rows]
    blended = _positions(w, scores)
    decided = np.where(np.abs(blended) > entry_threshold, blended, 0.0)
    out: dict[str, float] = {"bars": float(rows.sum())}
    for suffix, pos in (("", decided), ("_continuous", blended)):
        pnl = _pnl(pos, returns, cost_per_turn)
        equity = np.cumprod(1.0 + pnl)
        out["sharpe" + suffix] = sharpe(pnl, env.periods_per_year)
        out["total_return" + suffix] = float(equity[-1] - 1.0) if equity.size else 0.0
        out["max_drawdown" + suffix] = max_drawdown(np.concatenate([[1.0], equity]))
        out["turnover" + suffix] = turnover(pos)
        out["churn_rate" + suffix] = churn_rate(pos)
    out["max_disruption"] = max_disruption(w, np.argmax(env.posteriors[rows], axis=1))
    out["mean_disruption"] = float(np.mean(disruption(w))) if w.size else 0.0
    out["mean_flat_weight"] = float(np.mean(w[:, -1])) if w.size else 0.0
    out["weight_sum_error"] = float(np.max(np.abs(w.sum(axis=1) - 1.0))) if w.size else 0.0
    return out


def episode_return(
    weights: NDArray[np.float64], env: EnvData, config: MetaTrainConfig, scale: float | None = None
) -> float:
    """The training reward of a deterministic weight path, per ``episode_bars`` bars, on the scored rows of ``env``."""
    rows = env.valid & np.all(np.isfinite(weights), axis=1)
    if not rows.any():
        return 0.0
    w = weights[rows]
    pos = _positions(w, env.scores[rows])
    if config.reward_position != "continuous":
        pos = reward_positions(pos, config)
    pnl = _pnl(pos, env.returns[rows], config.cost_per_turn)
    unit = (scale or env.return_scale()) * math.sqrt(config.episode_bars)
    per_bar = pnl / unit - config.churn_penalty * disruption(w)
    return float(per_bar.sum() * config.episode_bars / per_bar.size)


def mean_episode_return(policy: MetaPolicy, envs: Sequence[EnvData], config: MetaTrainConfig) -> float:
    """The deterministic training objective of ``policy``, averaged over ``envs``."""
    return float(np.mean([episode_return(rolled_weights(policy, e.features, e.posteriors), e, config) for e in envs]))


def reward_positions(blend: NDArray[np.float64], config: MetaTrainConfig) -> NDArray[np.float64]:
    """The position the training reward earns on, from the blend path: ``ffe.training.reinforce.reward_positions``
    for one path, in numpy."""
    if config.reward_position == "continuous":
        return blend
    band = config.entry_threshold
    if config.reward_position == "traded":
        return np.where(np.abs(blend) > band, blend, 0.0)
    out = np.empty_like(blend)
    held = 0.0
    for t, s in enumerate(blend):
        held = 1.0 if s > band else 0.0 if s < -band else held
        out[t] = held
    return out


def _positions(w: NDArray[np.float64], scores: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.clip(np.sum(w[:, :N_STRATEGIES] * scores, axis=1), -1.0, 1.0)


def _pnl(pos: NDArray[np.float64], returns: NDArray[np.float64], cost: float) -> NDArray[np.float64]:
    traded = np.abs(np.diff(pos, prepend=pos[:1])) if pos.size else pos
    out: NDArray[np.float64] = pos * returns - cost * traded
    return out
