"""REINFORCE for the meta-controller: episode sampling, the reward, one policy-gradient update, an epoch of them.

Episodes. An episode is ``episode_bars`` consecutive valid bars of one environment (``ffe.training.meta_env``),
starting from equal weights; ``EpisodeSampler`` draws their starts uniformly over given row ranges. At bar ``t``
the policy sees row ``t`` (bars up to ``t`` only), its action is the logit vector plus Gaussian exploration noise
``N(0, exploration_sigma²)``, and the weights move ``smoothing`` of the way to the softmax of the action (the rule
``ffe.domain.meta.step`` applies). The position is ``clip(Σ_i w_i · score_i, -1, 1)`` (flat scores 0) and earns
the *next* bar's return, less ``cost_per_turn · |Δposition|``.

Reward (per bar, summed over the episode)::

    r_t = pnl_t / (σ · √episode_bars) - churn_penalty · TV(w_t, w_{t-1})

with ``σ`` the standard deviation of the series' one-bar returns over the rows given for training (a unit of
risk, never a trading input). Scaling by the asset's own volatility makes BTC hours, EUR/USD hours and S&P days
comparable, keeps staying flat at exactly zero (a per-episode Sharpe ratio is undefined there and rewards tiny,
lucky positions), and keeps the reward additive, so REINFORCE can use the reward-to-go with a per-bar
batch-mean baseline instead of one episode total. The ``√episode_bars`` makes an episode's return a
t-statistic-like number of order one whatever its length.

The position the P&L and costs are computed on is ``MetaTrainConfig.reward_position`` (``reward_positions``):
the continuous blend above (the default), the blend only outside the entry band (``traded``: the position
``meta_env.evaluate`` scores), or the spot position ``ffe backtest`` holds (``latched``). The rewards need no
gradient, so the dead band and the latch are fine for REINFORCE. ``naive_pull > 0`` adds
``naive_pull · KL(equal blend ‖ softmax(logits))``, averaged over bars, to the loss: a pull of the policy's
target weights toward the naive router's equal blend of the three strategies (flat weighted 0).

An update draws its episodes and exploration noise from the caller's generator; ``train_meta`` and
``fine_tune`` seed it from the config and run their updates under ``deterministic_torch``, so a seed gives the
same parameters every time. ``fine_tune`` is the online update (every valid row, an optional penalty such as
EWC's); ``explore`` and ``log_likelihood`` are the pieces a Fisher estimate reuses (``ffe.training.ewc``).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from ffe.training.meta_config import MetaTrainConfig
from ffe.training.meta_env import EQUAL_BLEND, N_OPTIONS, N_STRATEGIES, EnvData
from ffe.training.meta_network import PolicyNet

Penalty = Callable[[PolicyNet], torch.Tensor]  # an extra loss term on the parameters (e.g. EWC's)


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

    @classmethod
    def everywhere(cls, envs: Sequence[EnvData], bars: int) -> EpisodeSampler:
        """Episode starts over every valid row of ``envs``."""
        return cls(envs, [(0, len(e)) for e in envs], bars)


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


def explore(
    module: PolicyNet, batch: EpisodeBatch, rng: np.random.Generator, config: MetaTrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exploration noise for every bar of ``batch``, drawn from ``rng``, and the :func:`noisy_rollout` it gives."""
    noise = torch.as_tensor(rng.standard_normal((*batch.returns.shape, N_OPTIONS)), dtype=torch.float32)
    return noisy_rollout(module, batch, noise, config)


def reward_positions(blend: torch.Tensor, config: MetaTrainConfig) -> torch.Tensor:
    """The position ``(B, L)`` the reward earns on, from the blend ``clip(Σ w_i · score_i, -1, 1)`` ``(B, L)``.

    ``config.reward_position``: ``continuous`` is the blend; ``traded`` the blend where ``|blend| >
    entry_threshold``, else 0; ``latched`` 1 from a bar whose blend is above ``entry_threshold`` until one below
    ``-entry_threshold`` (then 0), held inside the band, flat before the episode's first signal.
    ``ffe.training.meta_env.reward_positions`` is the same rule in numpy.
    """
    if config.reward_position == "continuous":
        return blend
    band = config.entry_threshold
    if config.reward_position == "traded":
        return torch.where(torch.abs(blend) > band, blend, torch.zeros_like(blend))
    buy, sell = blend > band, blend < -band
    held = torch.zeros_like(blend[:, 0])
    out = torch.empty_like(blend)
    for t in range(blend.shape[1]):
        held = torch.where(buy[:, t], torch.ones_like(held), torch.where(sell[:, t], torch.zeros_like(held), held))
        out[:, t] = held
    return out


def bar_rewards(weights: torch.Tensor, batch: EpisodeBatch, config: MetaTrainConfig) -> torch.Tensor:
    """The reward of the module docstring for every bar of the weight paths ``weights`` ``(B, L, 4)``."""
    pos = torch.clamp((weights[..., :N_STRATEGIES] * batch.scores).sum(-1), -1.0, 1.0)
    if config.reward_position != "continuous":
        pos = reward_positions(pos, config)
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
    return _gaussian_log_likelihood(actions, mu, sigma)


def _gaussian_log_likelihood(actions: torch.Tensor, mu: torch.Tensor, sigma: float) -> torch.Tensor:
    return -0.5 * (((actions - mu) / sigma) ** 2).sum(-1)


def naive_divergence(logits: torch.Tensor) -> torch.Tensor:
    """``KL(equal blend ‖ softmax(logits))`` per bar: 0 where the target weights are the naive router's blend."""
    target = torch.as_tensor(EQUAL_BLEND[:N_STRATEGIES], dtype=logits.dtype)
    log_p = torch.log_softmax(logits, dim=-1)[..., :N_STRATEGIES]
    return (target * (torch.log(target) - log_p)).sum(-1)


def reinforce_step(
    module: PolicyNet,
    optimizer: torch.optim.Optimizer,
    batch: EpisodeBatch,
    rng: np.random.Generator,
    config: MetaTrainConfig,
    penalty: Penalty | None = None,
) -> float:
    """One REINFORCE update (reward-to-go, per-bar batch-mean baseline); returns the batch's mean episode return."""
    inputs, actions, after = explore(module, batch, rng, config)
    rewards = bar_rewards(after, batch, config)
    to_go = torch.flip(torch.cumsum(torch.flip(rewards, [1]), 1), [1])
    advantage = to_go - to_go.mean(dim=0, keepdim=True)
    advantage = advantage / (advantage.std() + 1e-8)
    if config.naive_pull > 0.0:  # one forward for both terms; at 0 the loss is computed exactly as before
        mu = module.logits(batch.features, batch.posteriors, inputs)
        ll = _gaussian_log_likelihood(actions, mu, config.exploration_sigma)
        loss = -(ll * advantage).mean() + config.naive_pull * naive_divergence(mu).mean()
    else:
        loss = -(log_likelihood(module, batch, inputs, actions, config.exploration_sigma) * advantage).mean()
    if penalty is not None:
        loss = loss + penalty(module)
    optimizer.zero_grad()
    loss.backward()
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


def run_epoch(
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


def fine_tune(
    module: PolicyNet,
    envs: Sequence[EnvData],
    config: MetaTrainConfig,
    epochs: int,
    penalty: Penalty | None = None,
) -> PolicyNet:
    """REINFORCE on every valid row of ``envs``, from a copy of ``module`` and a fresh RNG seeded by the config."""
    tuned = copy.deepcopy(module)
    sampler = EpisodeSampler.everywhere(envs, config.episode_bars)
    rng = np.random.default_rng(config.seed)
    with deterministic_torch():
        optimizer = torch.optim.Adam(tuned.parameters(), lr=config.lr)
        for _ in range(epochs):
            run_epoch(tuned, sampler, config, rng, optimizer, penalty)
    tuned.eval()
    return tuned
