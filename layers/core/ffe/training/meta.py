"""Training the RL meta-controller: a small tanh MLP over (features, regime posterior, current weights), learnt
with REINFORCE and exported to the numpy policy of ``ffe.domain.meta``.

Environment. An episode is ``episode_bars`` consecutive valid bars of one series, starting from equal weights.
At bar ``t`` the policy sees row ``t`` (bars up to ``t`` only), its action is the logit vector plus Gaussian
exploration noise ``N(0, exploration_sigma²)``, and the weights move ``smoothing`` of the way to the softmax of
the action (the rule ``ffe.domain.meta.step`` applies). The position is ``clip(Σ_i w_i · score_i, -1, 1)``
(flat scores 0) and earns the *next* bar's return, less ``cost_per_turn · |Δposition|``.

Reward (per bar, summed over the episode)::

    r_t = pnl_t / (σ · √episode_bars) - churn_penalty · TV(w_t, w_{t-1})

with ``σ`` the standard deviation of the series' one-bar returns over the rows given for training (a unit of
risk, never a trading input). Scaling by the asset's own volatility makes BTC hours, EUR/USD hours and S&P days
comparable, keeps staying flat at exactly zero (a per-episode Sharpe ratio is undefined there and rewards tiny,
lucky positions), and keeps the reward additive, so REINFORCE can use the reward-to-go with a per-bar
batch-mean baseline instead of one episode total. The ``√episode_bars`` makes an episode's return a
t-statistic-like number of order one whatever its length.

Walk-forward. ``train_meta`` splits each training series into expanding-window folds and spends its epochs
fold by fold: while on fold ``k`` it samples episodes from fold ``k``'s training rows only and evaluates, after
every epoch, deterministically (no noise, weights rolled over ``roll_bars`` from equal weights exactly as a
decision computes them) on fold ``k``'s test block, which it has never trained on. The policy carries over from
fold to fold, like a model retrained as data arrives. The held-out part of each series (``data.holdout``) is
never passed to ``train_meta``; :func:`evaluate` measures it afterwards.

Deterministic evaluation acts as a decision does: the blended score ``s`` trades only when ``|s|`` exceeds
``entry_threshold`` and then holds ``s`` (long or short, sized by confidence); inside the dead band it is flat.
The continuous position the policy was trained on is reported beside it (``*_continuous``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from tqdm import tqdm

from ffe.domain.features import FEATURE_NAMES, FeatureParams, feature_matrix
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
from ffe.training.data import TrainingSeries, holdout, walk_forward

N_OPTIONS = len(OPTIONS)
N_STRATEGIES = len(STRATEGIES)  # the options before FLAT; FLAT scores 0
EQUAL_BLEND = np.array([1.0 / 3, 1.0 / 3, 1.0 / 3, 0.0])  # the naive equal-weight blend, as option weights

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class MetaTrainConfig:
    seed: int = 7
    hidden: int | tuple[int, ...] = 32
    smoothing: float = 0.2
    roll_bars: int = 24
    epochs: int = 90
    episodes_per_epoch: int = 1024
    batch_episodes: int = 128
    episode_bars: int = 256
    lr: float = 1e-3
    exploration_sigma: float = 0.5
    churn_penalty: float = 0.02
    cost_per_turn: float = 2e-4  # 2 bp per unit of exposure traded
    entry_threshold: float = 0.15
    folds: int = 3
    min_train_fraction: float = 0.4  # of a series' training rows before the first walk-forward test block
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < self.folds or self.folds < 1:
            raise ValueError(f"need 1 <= folds <= epochs, got folds={self.folds}, epochs={self.epochs}")
        if self.batch_episodes < 2 or self.episodes_per_epoch < self.batch_episodes:
            raise ValueError("need 2 <= batch_episodes <= episodes_per_epoch (the baseline is a batch mean)")
        if not 0.0 < self.smoothing <= 1.0 or self.exploration_sigma <= 0 or self.episode_bars < 2:
            raise ValueError("need smoothing in (0, 1], exploration_sigma > 0 and episode_bars >= 2")

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)

    @classmethod
    def quick(cls, **overrides: Any) -> MetaTrainConfig:
        """A few seconds of training: for tests and smoke runs, not for a model anyone trades."""
        params: dict[str, Any] = {
            "hidden": 16,
            "epochs": 4,
            "episodes_per_epoch": 32,
            "batch_episodes": 16,
            "episode_bars": 96,
            "folds": 2,
            "lr": 1e-2,
        }
        params.update(overrides)
        return cls(**params)


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


# --- the torch policy ---------------------------------------------------------------------------------------


class PolicyNet(nn.Module):
    """The torch twin of ``ffe.domain.meta.step``: same input layout, standardization, tanh layers and smoothing."""

    def __init__(
        self,
        n_features: int,
        n_regimes: int,
        hidden: Sequence[int],
        smoothing: float,
        roll_bars: int,
        input_mean: NDArray[np.float64],
        input_scale: NDArray[np.float64],
    ) -> None:
        super().__init__()
        self.smoothing = float(smoothing)
        self.roll_bars = int(roll_bars)
        self.n_options = N_OPTIONS  # an attribute: TorchScript cannot read module globals
        self.register_buffer("input_mean", torch.as_tensor(np.asarray(input_mean), dtype=torch.float32))
        self.register_buffer("input_scale", torch.as_tensor(np.asarray(input_scale), dtype=torch.float32))
        sizes = [n_features + n_regimes + N_OPTIONS, *hidden, N_OPTIONS]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in pairwise(sizes)])
        # Zero output layer: the untrained policy targets equal weights, so training starts from a neutral blend.
        last = self.layers[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def logits(self, features: torch.Tensor, posteriors: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        # Buffers are Tensor | Module to mypy; class annotations would be strings here, which TorchScript rejects.
        z = (features - self.input_mean) / self.input_scale  # type: ignore[operator]
        h = torch.cat([z, posteriors, current], dim=-1)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < n - 1:
                h = torch.tanh(h)
        return h

    def forward(self, features: torch.Tensor, posteriors: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        """Next weights, as ``ffe.domain.meta.step``."""
        target = torch.softmax(self.logits(features, posteriors, current), dim=-1)
        return (1.0 - self.smoothing) * current + self.smoothing * target

    @torch.jit.export
    def rollout(self, features: torch.Tensor, posteriors: torch.Tensor) -> torch.Tensor:
        """Weights after rolling over rows ``(N, m, F)``, ``(N, m, K)`` from equal weights (``latest_weights``)."""
        w = torch.full(
            (features.shape[0], self.n_options), 1.0 / self.n_options, dtype=features.dtype, device=features.device
        )
        for k in range(features.shape[1]):
            w = self.forward(features[:, k], posteriors[:, k], w)
        return w


def new_module(config: MetaTrainConfig, envs: Sequence[EnvData]) -> PolicyNet:
    """An untrained policy whose input standardization comes from the scored rows of ``envs``."""
    rows = np.concatenate([env.features[env.valid] for env in envs])
    if rows.shape[0] == 0:
        raise ValueError("no valid rows to standardize the policy's inputs on")
    scale = rows.std(axis=0)
    torch.manual_seed(config.seed)
    return PolicyNet(
        n_features=rows.shape[1],
        n_regimes=_n_regimes(envs),
        hidden=config.hidden_sizes,
        smoothing=config.smoothing,
        roll_bars=config.roll_bars,
        input_mean=rows.mean(axis=0),
        input_scale=np.where(scale > 0, scale, 1.0),
    )


def to_meta_policy(module: PolicyNet, version: str, feature_names: tuple[str, ...] = FEATURE_NAMES) -> MetaPolicy:
    """The numpy export ``ffe.domain.meta`` runs (weights transposed to ``(in, out)``)."""
    layers = []
    for layer in module.layers:
        assert isinstance(layer, nn.Linear)
        layers.append(
            (
                layer.weight.detach().cpu().double().numpy().T.copy(),
                layer.bias.detach().cpu().double().numpy().copy(),
            )
        )
    first = layers[0][0].shape[0]
    return MetaPolicy(
        version=version,
        feature_names=feature_names,
        n_regimes=first - len(feature_names) - N_OPTIONS,
        input_mean=_buffer(module, "input_mean"),
        input_scale=_buffer(module, "input_scale"),
        layers=tuple(layers),
        smoothing=module.smoothing,
        roll_bars=module.roll_bars,
    )


def from_meta_policy(policy: MetaPolicy) -> PolicyNet:
    """A torch module computing ``policy`` (to fine-tune an exported artifact, e.g. an online EWC update)."""
    module = PolicyNet(
        n_features=len(policy.feature_names),
        n_regimes=policy.n_regimes,
        hidden=[w.shape[1] for w, _ in policy.layers[:-1]],
        smoothing=policy.smoothing,
        roll_bars=policy.roll_bars,
        input_mean=policy.input_mean,
        input_scale=policy.input_scale,
    )
    with torch.no_grad():
        for layer, (w, b) in zip(module.layers, policy.layers, strict=True):
            assert isinstance(layer, nn.Linear)
            layer.weight.copy_(torch.as_tensor(w.T))
            layer.bias.copy_(torch.as_tensor(b))
    return module


def save_torch(module: PolicyNet, path: str | Path, policy: MetaPolicy | None = None) -> None:
    """TorchScript the module (``forward`` = one step, ``rollout`` = the weights of a decision) to ``path``.

    The numpy export rides along as ``meta_policy.json`` when given, so one file carries both forms.
    """
    extra = {"meta_policy.json": json.dumps(policy.to_dict())} if policy is not None else {}
    with _torchscript():
        torch.jit.script(module).save(str(path), _extra_files=extra)


def load_torch(path: str | Path) -> torch.jit.ScriptModule:
    """Load a module saved by :func:`save_torch`; needs torch only, not this package."""
    with _torchscript():
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return module


@contextlib.contextmanager
def _torchscript() -> Iterator[None]:
    # torch 2.13 deprecates TorchScript for torch.export; the serving container loads TorchScript (no Python
    # class needed), so the format stays until the container moves, and the warning is not repeated per call.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
        yield


def load_torch_policy(path: str | Path) -> MetaPolicy | None:
    """The numpy export stored beside the module by :func:`save_torch` (None when it was saved without one)."""
    extra = {"meta_policy.json": ""}
    with _torchscript():
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return MetaPolicy.from_dict(json.loads(extra["meta_policy.json"])) if extra["meta_policy.json"] else None


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
    pnl = _pnl(_positions(w, env.scores[rows]), env.returns[rows], config.cost_per_turn)
    unit = (scale or env.return_scale()) * math.sqrt(config.episode_bars)
    per_bar = pnl / unit - config.churn_penalty * disruption(w)
    return float(per_bar.sum() * config.episode_bars / per_bar.size)


def mean_episode_return(policy: MetaPolicy, envs: Sequence[EnvData], config: MetaTrainConfig) -> float:
    """The deterministic training objective of ``policy``, averaged over ``envs``."""
    return float(np.mean([episode_return(rolled_weights(policy, e.features, e.posteriors), e, config) for e in envs]))


def _positions(w: NDArray[np.float64], scores: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.clip(np.sum(w[:, :N_STRATEGIES] * scores, axis=1), -1.0, 1.0)


def _pnl(pos: NDArray[np.float64], returns: NDArray[np.float64], cost: float) -> NDArray[np.float64]:
    traded = np.abs(np.diff(pos, prepend=pos[:1])) if pos.size else pos
    out: NDArray[np.float64] = pos * returns - cost * traded
    return out


# --- training -----------------------------------------------------------------------------------------------


@dataclass
class MetaTrainResult:
    policy: MetaPolicy
    module: PolicyNet
    history: list[dict[str, float]]
    metrics: dict[str, float]  # walk-forward out of sample: each fold's test block at the end of its stage
    config: MetaTrainConfig = field(default_factory=MetaTrainConfig)


@dataclass
class EpisodeBatch:
    features: torch.Tensor  # (B, L, F)
    posteriors: torch.Tensor  # (B, L, K)
    scores: torch.Tensor  # (B, L, 3)
    returns: torch.Tensor  # (B, L)
    scale: torch.Tensor  # (B,) each episode's unit of risk

    def episode(self, i: int) -> EpisodeBatch:
        return EpisodeBatch(
            self.features[i : i + 1],
            self.posteriors[i : i + 1],
            self.scores[i : i + 1],
            self.returns[i : i + 1],
            self.scale[i : i + 1],
        )


class EpisodeSampler:
    """Episode starts drawn uniformly over every valid start in the given row ranges of the given envs."""

    def __init__(self, envs: Sequence[EnvData], ranges: Sequence[tuple[int, int]], bars: int) -> None:
        self.bars = bars
        self.tensors = [
            tuple(
                torch.as_tensor(np.nan_to_num(a), dtype=torch.float32)
                for a in (e.features, e.posteriors, e.scores, e.returns)
            )
            for e in envs
        ]
        self.scales = [e.return_scale() for e in envs]
        starts, owners = [], []
        for i, (env, (lo, hi)) in enumerate(zip(envs, ranges, strict=True)):
            s = _valid_starts(env.valid, lo, hi, bars)
            starts.append(s)
            owners.append(np.full(s.size, i))
        self.starts = np.concatenate(starts)
        self.owners = np.concatenate(owners)
        if self.starts.size == 0:
            raise ValueError(f"no run of {bars} valid bars to sample an episode from")

    def sample(self, rng: np.random.Generator, n: int) -> EpisodeBatch:
        picks = np.sort(rng.integers(0, self.starts.size, n))  # sorted: episodes of one env side by side
        offsets = np.arange(self.bars)
        parts: list[list[torch.Tensor]] = [[], [], [], [], []]
        for i in np.unique(self.owners[picks]):
            mine = picks[self.owners[picks] == i]
            idx = torch.as_tensor(self.starts[mine][:, None] + offsets)
            for slot, tensor in enumerate(self.tensors[i]):
                parts[slot].append(tensor[idx])
            parts[4].append(torch.full((mine.size,), self.scales[i], dtype=torch.float32))
        return EpisodeBatch(*(torch.cat(p) for p in parts))


def _valid_starts(valid: NDArray[np.bool_], lo: int, hi: int, bars: int) -> NDArray[np.int64]:
    window = valid[lo:hi]
    if window.size < bars:
        return np.zeros(0, dtype=np.int64)
    ok = np.lib.stride_tricks.sliding_window_view(window, bars).all(axis=1)
    return np.flatnonzero(ok).astype(np.int64) + lo


def noisy_rollout(
    module: PolicyNet, batch: EpisodeBatch, noise: torch.Tensor, config: MetaTrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noisy rollout without gradients: the weights fed to the policy, the actions taken, the weights after."""
    b, bars = batch.returns.shape
    w = torch.full((b, N_OPTIONS), 1.0 / N_OPTIONS)
    inputs, actions, after = (torch.empty(b, bars, N_OPTIONS) for _ in range(3))
    with torch.no_grad():
        for t in range(bars):
            a = module.logits(batch.features[:, t], batch.posteriors[:, t], w) + config.exploration_sigma * noise[:, t]
            inputs[:, t] = w
            w = (1.0 - config.smoothing) * w + config.smoothing * torch.softmax(a, dim=-1)
            actions[:, t] = a
            after[:, t] = w
    return inputs, actions, after


def bar_rewards(weights: torch.Tensor, batch: EpisodeBatch, config: MetaTrainConfig) -> torch.Tensor:
    pos = torch.clamp((weights[..., :N_STRATEGIES] * batch.scores).sum(-1), -1.0, 1.0)
    traded = torch.abs(torch.diff(pos, dim=1, prepend=pos[:, :1]))
    pnl = pos * batch.returns - config.cost_per_turn * traded
    start = torch.full_like(weights[:, :1], 1.0 / N_OPTIONS)
    tv = 0.5 * torch.abs(torch.diff(weights, dim=1, prepend=start)).sum(-1)
    unit = batch.scale[:, None] * math.sqrt(weights.shape[1])
    return pnl / unit - config.churn_penalty * tv


def log_likelihood(
    module: PolicyNet, batch: EpisodeBatch, inputs: torch.Tensor, actions: torch.Tensor, sigma: float
) -> torch.Tensor:
    """``log π(a_t | s_t)`` per bar, up to a constant, with gradients (one batched forward over every bar)."""
    mu = module.logits(batch.features, batch.posteriors, inputs)
    return -0.5 * (((actions - mu) / sigma) ** 2).sum(-1)


Penalty = Callable[[PolicyNet], torch.Tensor]


def reinforce_step(
    module: PolicyNet,
    optimizer: torch.optim.Optimizer,
    batch: EpisodeBatch,
    rng: np.random.Generator,
    config: MetaTrainConfig,
    penalty: Penalty | None = None,
) -> float:
    """One REINFORCE update (reward-to-go, per-bar batch-mean baseline); returns the batch's mean episode return."""
    noise = torch.as_tensor(rng.standard_normal((*batch.returns.shape, N_OPTIONS)), dtype=torch.float32)
    inputs, actions, after = noisy_rollout(module, batch, noise, config)
    rewards = bar_rewards(after, batch, config)
    to_go = torch.flip(torch.cumsum(torch.flip(rewards, [1]), 1), [1])
    advantage = to_go - to_go.mean(dim=0, keepdim=True)
    advantage = advantage / (advantage.std() + 1e-8)
    loss = -(log_likelihood(module, batch, inputs, actions, config.exploration_sigma) * advantage).mean()
    if penalty is not None:
        loss = loss + penalty(module)
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
    optimizer.step()
    return float(rewards.sum(dim=1).mean())


@contextlib.contextmanager
def deterministic_torch() -> Iterator[None]:
    """Deterministic kernels on one thread for the duration, restored after (the caller's process is not ours).

    One thread: the matrices are a few dozen wide, so a second thread only adds hand-off latency (each step
    measured 4x to 100x slower on 2 cores), and a fixed thread count keeps the reductions' order fixed.
    """
    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.set_num_threads(before[1])


def run_epochs(
    module: PolicyNet,
    sampler: EpisodeSampler,
    config: MetaTrainConfig,
    rng: np.random.Generator,
    optimizer: torch.optim.Optimizer,
    penalty: Penalty | None = None,
) -> float:
    """One epoch of updates; returns the mean noisy episode return over it."""
    module.train()
    returns = [
        reinforce_step(module, optimizer, sampler.sample(rng, config.batch_episodes), rng, config, penalty)
        for _ in range(config.episodes_per_epoch // config.batch_episodes)
    ]
    return float(np.mean(returns))


def train_meta(
    envs: Sequence[EnvData],
    config: MetaTrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    version: str | None = None,
) -> MetaTrainResult:
    """Train one policy on the training rows of ``envs`` with walk-forward REINFORCE (see the module docstring).

    Args:
        envs: training environments only (the holdout stays out); all with the same number of regimes.
        on_epoch: called after every epoch with the epoch number and its metrics (e.g. to log to MLflow).
        version: the exported policy's version; derived from the config and the learnt weights when None.
    """
    config = config or MetaTrainConfig()
    folds = _fold_ranges(envs, config)
    rng = np.random.default_rng(config.seed)
    history: list[dict[str, float]] = []
    at_fold_end: list[dict[str, float]] = []
    with deterministic_torch():
        module = new_module(config, envs)
        optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
        samplers = [EpisodeSampler(envs, [f[k][0] for f in folds], config.episode_bars) for k in range(config.folds)]
        for epoch in tqdm(range(config.epochs), desc="meta-controller", disable=not progress):
            k = epoch * config.folds // config.epochs
            train_return = run_epochs(module, samplers[k], config, rng, optimizer)
            tests = [
                env.slice(f[k][1][0], f[k][1][1], context=config.roll_bars - 1)
                for env, f in zip(envs, folds, strict=True)
            ]
            metrics = {"fold": float(k), "train_return": train_return, **_fold_metrics(module, envs, tests, config)}
            history.append(metrics)
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if (epoch + 1) * config.folds // config.epochs > k:  # the last epoch of fold k's stage
                at_fold_end.append(metrics)
    module.eval()
    final = {key: float(np.mean([m[key] for m in at_fold_end])) for key in at_fold_end[0] if key != "fold"}
    policy = to_meta_policy(module, "pending")
    policy = replace(policy, version=version or _derive_version(policy, config))
    return MetaTrainResult(policy=policy, module=module, history=history, metrics=final, config=config)


_Fold = tuple[tuple[int, int], tuple[int, int]]  # ((train_lo, train_hi), (test_lo, test_hi)) in env rows


def _fold_ranges(envs: Sequence[EnvData], config: MetaTrainConfig) -> list[list[_Fold]]:
    """Per env, per fold: ``((train_lo, train_hi), (test_lo, test_hi))`` in env rows.

    The training range stops one row short of the test block: that row's return is the test block's first bar.
    """
    if not envs:
        raise ValueError("train_meta needs at least one environment")
    _n_regimes(envs)
    out = []
    for env in envs:
        n = len(env) - env.scored_from
        splits = walk_forward(n, config.folds, max(1, int(n * config.min_train_fraction)))
        lo = env.scored_from
        out.append([((lo, lo + tr.stop - 1), (lo + te.start, lo + te.stop)) for tr, te in splits])
    return out


def _fold_metrics(
    module: PolicyNet, envs: Sequence[EnvData], tests: Sequence[EnvData], config: MetaTrainConfig
) -> dict[str, float]:
    """Deterministic test-block figures, averaged over the envs, next to the equal-weight blend's."""
    policy = to_meta_policy(module, "eval")
    rows = []
    for env, test in zip(envs, tests, strict=True):
        weights = rolled_weights(policy, test.features, test.posteriors)
        figures = evaluate_weights(weights, test, config.entry_threshold, config.cost_per_turn)
        baseline = equal_weights(test)
        naive = evaluate_weights(baseline, test, config.entry_threshold, config.cost_per_turn)
        rows.append(
            {
                "eval_return": episode_return(weights, test, config, env.return_scale()),
                "sharpe": figures["sharpe"],
                "sharpe_continuous": figures["sharpe_continuous"],
                "total_return": figures["total_return"],
                "churn_rate": figures["churn_rate"],
                "turnover": figures["turnover"],
                "max_disruption": figures["max_disruption"],
                "mean_flat_weight": figures["mean_flat_weight"],
                "equal_weight_eval_return": episode_return(baseline, test, config, env.return_scale()),
                "equal_weight_sharpe": naive["sharpe"],
            }
        )
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def _n_regimes(envs: Sequence[EnvData]) -> int:
    counts = {env.n_regimes for env in envs}
    if len(counts) != 1:
        raise ValueError(f"every environment needs the same number of regimes, got {sorted(counts)}")
    return counts.pop()


def _derive_version(policy: MetaPolicy, config: MetaTrainConfig) -> str:
    digest = hashlib.sha256(json.dumps([policy.to_dict(), asdict(config)], sort_keys=True).encode()).hexdigest()
    return f"meta-s{config.seed}-{digest[:12]}"


def _buffer(module: nn.Module, name: str) -> NDArray[np.float64]:
    value = getattr(module, name)
    assert isinstance(value, torch.Tensor)
    return value.detach().cpu().double().numpy().copy()


def parameter_vector(module: nn.Module) -> NDArray[np.float64]:
    """Every trainable parameter, flattened (to measure how far an update moved the policy)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).double().numpy()
