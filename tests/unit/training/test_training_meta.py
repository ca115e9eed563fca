import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.domain.features import FeatureParams, feature_matrix
from ffe.domain.meta import OPTIONS, MetaPolicy, rolled_weights, step
from ffe.domain.strategies import StrategyParams, score_matrix
from ffe.training.meta import MetaTrainResult, train_meta
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.meta_env import build_env, equal_weights, evaluate, evaluate_weights
from ffe.training.meta_network import (
    PolicyNet,
    from_meta_policy,
    load_torch,
    load_torch_policy,
    save_torch,
    to_meta_policy,
)
from ffe.training.reinforce import EpisodeSampler
from tests.unit.training.prepared import Prepared

CONFIG = MetaTrainConfig.quick()


def scrambled(module: PolicyNet, seed: int = 0) -> PolicyNet:
    """The same architecture with every parameter drawn at random: the untrained output layer is all zeros,
    which would make a parity test trivially pass."""
    out = copy.deepcopy(module)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return out


def windows(env_features: np.ndarray, env_posteriors: np.ndarray, ts: np.ndarray, m: int) -> tuple[torch.Tensor, ...]:
    idx = ts[:, None] - (m - 1) + np.arange(m)
    return (
        torch.as_tensor(env_features[idx], dtype=torch.float32),
        torch.as_tensor(env_posteriors[idx], dtype=torch.float32),
    )


def test_build_env_lines_up_the_domain_inputs_and_the_next_bar_return(btc: Prepared) -> None:
    # Given a real series and its mixture
    env = build_env(btc.series, btc.regime)
    closes = btc.series.closes

    # Then every column is the domain's own computation, row for row
    np.testing.assert_array_equal(env.features, feature_matrix(closes, FeatureParams()))
    np.testing.assert_array_equal(env.scores, score_matrix(btc.series.highs, btc.series.lows, closes, StrategyParams()))
    np.testing.assert_allclose(env.returns[:-1], closes[1:] / closes[:-1] - 1.0)
    assert np.isnan(env.returns[-1])
    # the warm-up and the last bar (no next close) are never traded
    warm = FeatureParams().warmup - 1
    assert not env.valid[:warm].any() and env.valid[warm] and not env.valid[-1]
    assert np.isnan(env.posteriors[:warm]).all()
    np.testing.assert_allclose(env.posteriors[warm:].sum(axis=1), 1.0)


def test_holdout_envs_never_hand_the_held_out_rows_to_training(btc: Prepared) -> None:
    n = len(btc.series)
    assert len(btc.train) == n * 3 // 4
    assert np.isnan(btc.train.returns[-1])  # its return would be the first held-out bar
    # the test env keeps history to roll the weights but scores only the held-out bars
    assert btc.test.valid.sum() == n // 4 - 1
    assert not btc.test.valid[: btc.test.scored_from].any()
    np.testing.assert_array_equal(
        btc.test.features[btc.test.scored_from :], build_env(btc.series, btc.regime).features[n * 3 // 4 :]
    )


def test_sampled_episodes_stay_inside_their_row_range(btc: Prepared) -> None:
    sampler = EpisodeSampler([btc.train], [(100, 900)], bars=64)
    assert sampler.starts.min() >= 100 and sampler.starts.max() + 64 <= 900
    batch = sampler.sample(np.random.default_rng(0), 8)
    assert tuple(batch.features.shape) == (8, 64, 3) and torch.isfinite(batch.returns).all()


def test_torch_step_and_rollout_match_the_numpy_policy(btc: Prepared, quick_result: MetaTrainResult) -> None:
    # Given a policy with random (non-trivial) parameters and its numpy export
    module = scrambled(quick_result.module)
    policy = to_meta_policy(module, "parity")
    env = btc.test
    m = policy.roll_bars

    # When both roll the weights the way a decision does
    expected = rolled_weights(policy, env.features, env.posteriors)
    ts = np.flatnonzero(np.all(np.isfinite(expected), axis=1))
    with torch.no_grad():
        got = module.rollout(*windows(env.features, env.posteriors, ts, m)).double().numpy()

    # Then they agree on every row
    assert ts.size > 500
    assert np.max(np.abs(got - expected[ts])) <= 1e-5
    # and so does a single step from arbitrary current weights
    rows = ts[:50]
    current = np.random.default_rng(1).dirichlet(np.ones(len(OPTIONS)), rows.size)
    with torch.no_grad():
        one = module(
            *(torch.as_tensor(a, dtype=torch.float32) for a in (env.features[rows], env.posteriors[rows], current))
        )
    np.testing.assert_allclose(one.numpy(), step(policy, env.features[rows], env.posteriors[rows], current), atol=1e-6)


def test_export_round_trips_through_json_and_back_to_torch(quick_result: MetaTrainResult) -> None:
    module = scrambled(quick_result.module, seed=3)
    policy = to_meta_policy(module, "v1")
    restored = MetaPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    rebuilt = from_meta_policy(restored)
    for a, b in zip(module.parameters(), rebuilt.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert restored.n_regimes == 6 and restored.roll_bars == CONFIG.roll_bars


def test_torchscript_file_reproduces_the_module_and_carries_the_numpy_export(
    tmp_path: Path, btc: Prepared, quick_result: MetaTrainResult
) -> None:
    # Given a trained module saved as TorchScript
    path = tmp_path / "meta.pt"
    save_torch(quick_result.module, path, quick_result.policy)

    # When it is loaded without this package's classes
    loaded = load_torch(path)
    stored = load_torch_policy(path)

    # Then it computes the same weights and names the same policy
    ts = np.arange(100, 400)
    x = windows(btc.train.features, btc.train.posteriors, ts, CONFIG.roll_bars)
    with torch.no_grad():
        torch.testing.assert_close(loaded.rollout(*x), quick_result.module.rollout(*x), rtol=0, atol=0)
    assert stored is not None and stored.to_dict() == quick_result.policy.to_dict()
    # a module saved without the export has none
    save_torch(quick_result.module, tmp_path / "bare.pt")
    assert load_torch_policy(tmp_path / "bare.pt") is None
    # and the file names no folder: the same module saved anywhere is the same bytes (ffe train --reproduce)
    raw = path.read_bytes()
    assert b"debug_pkl" not in raw and str(Path(torch.__file__).parent).encode() not in raw
    assert str(Path(__file__).resolve().parents[3]).encode() not in raw
    save_torch(quick_result.module, tmp_path / "again.pt", quick_result.policy)
    assert (tmp_path / "again.pt").read_bytes() == raw


def test_training_twice_with_one_seed_gives_identical_metrics_and_weights(
    btc: Prepared, spx: Prepared, quick_result: MetaTrainResult
) -> None:
    again = train_meta([btc.train, spx.train], CONFIG, progress=False)
    assert again.history == quick_result.history
    assert again.metrics == quick_result.metrics
    assert again.policy.version == quick_result.policy.version
    for (w1, b1), (w2, b2) in zip(again.policy.layers, quick_result.policy.layers, strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)


def test_training_moves_the_policy_and_reports_every_epoch(btc: Prepared, spx: Prepared) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    result = train_meta([btc.train, spx.train], CONFIG, on_epoch=lambda e, m: seen.append((e, m)), progress=False)
    assert [e for e, _ in seen] == list(range(CONFIG.epochs))
    assert [m["fold"] for _, m in seen] == [0.0, 0.0, 1.0, 1.0]
    for _, metrics in seen:
        assert {"eval_return", "sharpe", "churn_rate", "max_disruption", "turnover", "train_return"} <= set(metrics)
        assert all(np.isfinite(v) for v in metrics.values())
    assert result.history == [m for _, m in seen]
    # the untrained output layer is zero; training must have changed it
    assert np.abs(result.policy.layers[-1][0]).max() > 0
    assert "fold" not in result.metrics and np.isfinite(result.metrics["sharpe"])


def test_evaluation_weights_are_convex_on_every_row(btc: Prepared, quick_result: MetaTrainResult) -> None:
    for env in (btc.train, btc.test):
        weights = rolled_weights(quick_result.policy, env.features, env.posteriors)
        rows = np.all(np.isfinite(weights), axis=1)
        assert rows.sum() > 0.9 * len(env) - 100
        assert np.max(np.abs(weights[rows].sum(axis=1) - 1.0)) <= 1e-3
        assert weights[rows].min() >= 0.0
        figures = evaluate(quick_result.policy, env, CONFIG.entry_threshold)
        assert figures["weight_sum_error"] <= 1e-3
        assert figures["bars"] == (env.valid & rows).sum()


def test_equal_weight_blend_never_disrupts_and_trades_only_outside_the_dead_band(btc: Prepared) -> None:
    env = btc.test
    figures = evaluate_weights(equal_weights(env), env, entry_threshold=0.15)
    assert figures["max_disruption"] == 0.0 and figures["mean_flat_weight"] == 0.0
    # a dead band makes the decision position trade less than the continuous one
    assert figures["turnover"] != figures["turnover_continuous"]
    wide = evaluate_weights(equal_weights(env), env, entry_threshold=0.99)
    assert wide["turnover"] == 0.0 and wide["total_return"] == 0.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spread=st.floats(0.01, 1000.0))
def test_policy_weights_are_convex_for_any_input(seed: int, spread: float) -> None:
    # Given any parameters and any inputs, even extreme ones
    rng = np.random.default_rng(seed)
    module = scrambled(PolicyNet(3, 5, (8,), 0.2, 4, np.zeros(3), np.ones(3)), seed=seed % 1000)
    policy = to_meta_policy(module, "h")
    features = rng.normal(0.0, spread, (16, 3))
    posteriors = rng.dirichlet(np.ones(5), 16)
    current = rng.dirichlet(np.ones(len(OPTIONS)), 16)

    # Then both forms give non-negative weights summing to 1
    ours = step(policy, features, posteriors, current)
    with torch.no_grad():
        theirs = module(*(torch.as_tensor(a, dtype=torch.float32) for a in (features, posteriors, current))).numpy()
    for w in (ours, theirs):
        assert np.all(w >= 0.0)
        assert np.max(np.abs(w.sum(axis=1) - 1.0)) <= 1e-3


def test_config_rejects_a_baseline_of_one_episode() -> None:
    with pytest.raises(ValueError, match="batch"):
        MetaTrainConfig(batch_episodes=1)
