"""The meta-controller's training options of issue 19 part 5: the position the reward earns on
(``MetaTrainConfig.reward_position``) and the pull toward the naive blend (``naive_pull``). Their defaults train
exactly as before they existed: same parameters, same policy version, same recorded config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from ffe.domain.meta import MetaPolicy, rolled_weights
from ffe.training.meta import _derive_version, train_meta
from ffe.training.meta_config import LATE_FIELDS, MetaTrainConfig
from ffe.training.meta_env import EQUAL_BLEND, EnvData, episode_return
from ffe.training.meta_env import reward_positions as np_reward_positions
from ffe.training.reinforce import EpisodeBatch, bar_rewards, naive_divergence, reward_positions
from tests.unit.training.prepared import Prepared

BLEND = [0.0, 0.2, 0.1, -0.1, -0.3, 0.05, 0.5, -0.16]  # entry_threshold 0.15
LATE_KINDS = ("continuous", "traded", "latched")
RETURNS = [0.01, -0.02, 0.03, 0.01, -0.01, 0.02, -0.01, 0.0]


def positions(kind: str) -> list[float]:
    out = reward_positions(torch.tensor([BLEND], dtype=torch.float64), MetaTrainConfig(reward_position=kind))
    return [float(x) for x in out[0]]


def test_traded_position_is_the_blend_outside_the_entry_band_and_flat_inside() -> None:
    assert positions("continuous") == pytest.approx(BLEND)
    assert positions("traded") == pytest.approx([0.0, 0.2, 0.0, 0.0, -0.3, 0.0, 0.5, -0.16])


def test_latched_position_is_long_from_a_buy_until_a_sell_and_held_inside_the_band() -> None:
    assert positions("latched") == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("kind", ["continuous", "traded", "latched"])
def test_numpy_rule_is_the_torch_rule(kind: str) -> None:
    rng = np.random.default_rng(3)
    blend = np.clip(rng.normal(0, 0.3, 200), -1, 1)
    config = MetaTrainConfig(reward_position=kind)
    ours = reward_positions(torch.tensor(blend[None]), config)[0].numpy()
    np.testing.assert_array_equal(np_reward_positions(blend, config), ours)


def batch_of(blend: list[float], returns: list[float]) -> tuple[torch.Tensor, EpisodeBatch]:
    """Equal weights on the three strategies, every strategy scoring ``blend``: the blend is ``blend``."""
    n = len(blend)
    weights = torch.tensor(np.tile(EQUAL_BLEND, (1, n, 1)), dtype=torch.float32)
    scores = torch.tensor(np.repeat(np.array(blend)[None, :, None], 3, axis=2), dtype=torch.float32)
    batch = EpisodeBatch(
        features=torch.zeros(1, n, 3),
        posteriors=torch.zeros(1, n, 2),
        scores=scores,
        returns=torch.tensor([returns], dtype=torch.float32),
        scale=torch.ones(1),
    )
    return weights, batch


def test_traded_reward_earns_and_pays_costs_on_the_traded_position_only() -> None:
    weights, batch = batch_of(BLEND, RETURNS)
    config = MetaTrainConfig(reward_position="traded", cost_per_turn=0.001, churn_penalty=0.0)
    got = bar_rewards(weights, batch, config)[0].double().numpy() * np.sqrt(len(BLEND))
    pos = np.array(positions("traded"))
    want = pos * np.array(RETURNS) - 0.001 * np.abs(np.diff(pos, prepend=pos[:1]))
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[2] == pytest.approx(-0.001 * 0.2, abs=1e-7)  # inside the band: flat, the exit costs, no P&L


def test_episode_return_scores_the_configured_position(btc: Prepared) -> None:
    weights = np.tile(EQUAL_BLEND, (len(btc.test), 1))
    figures = {kind: episode_return(weights, btc.test, MetaTrainConfig(reward_position=kind)) for kind in LATE_KINDS}
    assert len(set(figures.values())) == 3  # three different positions, three different objectives


def test_naive_divergence_is_smallest_at_the_equal_blend() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, -30.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, -30.0]])
    kl = naive_divergence(logits)
    assert float(kl[0]) == pytest.approx(0.0, abs=1e-9)
    assert 0 < float(kl[1]) < float(kl[2])  # flat weight costs less than a lopsided blend here


def mean_distance_to_naive(policy: MetaPolicy, env: EnvData) -> float:
    w = rolled_weights(policy, env.features, env.posteriors)
    rows = np.all(np.isfinite(w), axis=1)
    return float(np.mean(np.abs(w[rows] - EQUAL_BLEND).sum(axis=1)))


def test_naive_pull_moves_the_trained_weights_toward_the_equal_blend(btc: Prepared, spx: Prepared) -> None:
    config = MetaTrainConfig.quick()
    free = train_meta([btc.train, spx.train], config, progress=False)
    pulled = train_meta([btc.train, spx.train], replace(config, naive_pull=5.0), progress=False)
    assert mean_distance_to_naive(pulled.policy, btc.test) < 0.5 * mean_distance_to_naive(free.policy, btc.test)


def test_traded_reward_trains_another_policy(btc: Prepared) -> None:
    config = MetaTrainConfig.quick()
    base = train_meta([btc.train], config, progress=False)
    traded = train_meta([btc.train], replace(config, reward_position="traded"), progress=False)
    assert base.policy.version != traded.policy.version
    assert not np.array_equal(base.policy.layers[-1][0], traded.policy.layers[-1][0])


def test_version_digest_of_a_default_config_is_the_old_formula(btc: Prepared) -> None:
    result = train_meta([btc.train], MetaTrainConfig.quick(epochs=2), progress=False)
    config = result.config
    old = {k: v for k, v in asdict(config).items() if k not in LATE_FIELDS}
    pending = replace(result.policy, version="pending")  # the version digests the policy before it is named
    digest = hashlib.sha256(json.dumps([pending.to_dict(), old], sort_keys=True).encode()).hexdigest()
    assert result.policy.version == f"meta-s{config.seed}-{digest[:12]}"
    other = replace(config, naive_pull=0.5)
    assert _derive_version(pending, other) != result.policy.version  # a set option is part of the version
