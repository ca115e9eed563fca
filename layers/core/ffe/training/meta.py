"""Training the RL meta-controller: walk-forward REINFORCE over the training rows, exported to the numpy policy
of ``ffe.domain.meta``.

``train_meta`` splits each training series into expanding-window folds and spends its epochs fold by fold:
while on fold ``k`` it samples episodes from fold ``k``'s training rows only (``ffe.training.reinforce``) and
evaluates, after every epoch, deterministically (no noise, weights rolled over ``roll_bars`` from equal weights
exactly as a decision computes them; ``ffe.training.meta_env``) on fold ``k``'s test block, which it has never
trained on. The policy carries over from fold to fold, like a model retrained as data arrives. The held-out
part of each series (``data.holdout``) is never passed to ``train_meta``; ``meta_env.evaluate`` measures it
afterwards. The network and its TorchScript export are in ``ffe.training.meta_network``, the hyperparameters
in ``ffe.training.meta_config``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm import tqdm

from ffe.domain.meta import MetaPolicy, rolled_weights
from ffe.training.data import walk_forward
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.meta_env import EnvData, episode_return, equal_weights, evaluate_weights, regime_count
from ffe.training.meta_network import PolicyNet, new_module, to_meta_policy
from ffe.training.reinforce import EpisodeSampler, deterministic_torch, run_epoch

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class MetaTrainResult:
    policy: MetaPolicy
    module: PolicyNet
    history: list[dict[str, float]]
    metrics: dict[str, float]  # walk-forward out of sample: each fold's test block at the end of its stage
    config: MetaTrainConfig = field(default_factory=MetaTrainConfig)


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
            train_return = run_epoch(module, samplers[k], config, rng, optimizer)
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
    regime_count(envs)
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


def _derive_version(policy: MetaPolicy, config: MetaTrainConfig) -> str:
    digest = hashlib.sha256(json.dumps([policy.to_dict(), config.recorded()], sort_keys=True).encode()).hexdigest()
    return f"meta-s{config.seed}-{digest[:12]}"
