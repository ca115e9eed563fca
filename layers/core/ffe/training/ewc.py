"""Elastic weight consolidation (Kirkpatrick et al., 2017) for online updates of the meta-controller.

An online update fine-tunes the policy on the newest bars. Left alone, REINFORCE on a few recent weeks drifts
the parameters wherever that stretch rewards and forgets what held on the older history. EWC adds
``λ/2 · Σ_i F_i (θ_i - θ*_i)²`` to the loss, ``F`` being the diagonal Fisher information of the policy on the
old data: parameters the old behaviour depends on are held near their old values, the rest stay free.

``ewc_update`` runs the same update twice from the same seed (same episodes, same exploration noise), with
the penalty and without it, and reports how much the deterministic objective on the old data fell in each
case, so the worth of the penalty is measured rather than assumed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ffe.domain.meta import MetaPolicy
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.meta_env import EnvData, mean_episode_return
from ffe.training.meta_network import PolicyNet, parameter_vector, to_meta_policy
from ffe.training.reinforce import EpisodeSampler, Penalty, deterministic_torch, explore, fine_tune, log_likelihood

Fisher = dict[str, torch.Tensor]


@dataclass
class EwcResult:
    policy: MetaPolicy
    module: PolicyNet
    ewc_lambda: float
    old_score_before: float  # deterministic mean episode return on the old data, before the update
    old_score_after: float
    degradation_pct: float  # > 0: the old objective got worse by this share of its magnitude
    degradation_pct_without_ewc: float
    param_shift: float  # L2 distance the update moved the parameters
    param_shift_without_ewc: float
    module_without_ewc: PolicyNet


def fisher_information(
    module: PolicyNet, envs_old: Sequence[EnvData], config: MetaTrainConfig, samples: int = 64
) -> Fisher:
    """Diagonal Fisher information per bar: mean squared gradient of an episode's log-likelihood, over ``L``.

    Actions are sampled from the policy itself (exploration noise), so the squared score is the Fisher and
    not the empirical Fisher; per-bar cross terms vanish in expectation, hence the division by the length.
    """
    sampler = EpisodeSampler.everywhere(envs_old, config.episode_bars)
    rng = np.random.default_rng(config.seed)
    fisher = {name: torch.zeros_like(p) for name, p in module.named_parameters()}
    with deterministic_torch():
        batch = sampler.sample(rng, samples)
        inputs, actions, _ = explore(module, batch, rng, config)
        for i in range(samples):
            module.zero_grad()
            ll = log_likelihood(
                module, batch.episode(i), inputs[i : i + 1], actions[i : i + 1], config.exploration_sigma
            )
            ll.sum().backward()
            for name, p in module.named_parameters():
                if p.grad is not None:
                    fisher[name] += p.grad.detach() ** 2
    module.zero_grad()
    return {name: f / (samples * config.episode_bars) for name, f in fisher.items()}


def ewc_penalty(fisher: Fisher, anchor: dict[str, torch.Tensor], ewc_lambda: float) -> Penalty:
    def penalty(module: PolicyNet) -> torch.Tensor:
        terms = [(fisher[name] * (p - anchor[name]) ** 2).sum() for name, p in module.named_parameters()]
        return 0.5 * ewc_lambda * torch.stack(terms).sum()

    return penalty


def ewc_update(
    module: PolicyNet,
    old_envs: Sequence[EnvData],
    new_envs: Sequence[EnvData],
    config: MetaTrainConfig,
    ewc_lambda: float,
    epochs: int,
    fisher_samples: int = 64,
    version: str = "ewc",
) -> EwcResult:
    """Fine-tune ``module`` (left unchanged) on ``new_envs`` with and without EWC; score both on ``old_envs``."""
    if ewc_lambda < 0 or epochs < 1:
        raise ValueError(f"need ewc_lambda >= 0 and epochs >= 1, got {ewc_lambda}, {epochs}")
    before = to_meta_policy(module, "before")
    old_before = mean_episode_return(before, old_envs, config)
    fisher = fisher_information(copy.deepcopy(module), old_envs, config, fisher_samples)
    anchor = {name: p.detach().clone() for name, p in module.named_parameters()}
    with_ewc = fine_tune(module, new_envs, config, epochs, ewc_penalty(fisher, anchor, ewc_lambda))
    without = fine_tune(module, new_envs, config, epochs, None)
    after, after_plain = to_meta_policy(with_ewc, version), to_meta_policy(without, version)
    old_after = mean_episode_return(after, old_envs, config)
    old_after_plain = mean_episode_return(after_plain, old_envs, config)
    start = parameter_vector(module)
    return EwcResult(
        policy=after,
        module=with_ewc,
        ewc_lambda=ewc_lambda,
        old_score_before=old_before,
        old_score_after=old_after,
        degradation_pct=_degradation(old_before, old_after),
        degradation_pct_without_ewc=_degradation(old_before, old_after_plain),
        param_shift=float(np.linalg.norm(parameter_vector(with_ewc) - start)),
        param_shift_without_ewc=float(np.linalg.norm(parameter_vector(without) - start)),
        module_without_ewc=without,
    )


def _degradation(before: float, after: float) -> float:
    """How much worse ``after`` is than ``before``, in % of ``|before|`` (negative: it improved)."""
    return 100.0 * (before - after) / max(abs(before), 1e-12)
