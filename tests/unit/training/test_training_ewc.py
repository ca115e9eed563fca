import math

import numpy as np
import pytest

from ffe.training.ewc import ewc_update, fisher_information
from ffe.training.meta import MetaTrainResult
from ffe.training.meta_config import MetaTrainConfig
from ffe.training.meta_env import EnvData
from ffe.training.meta_network import parameter_vector
from tests.unit.training.prepared import Prepared

CONFIG = MetaTrainConfig.quick()


@pytest.fixture(scope="module")
def old_new(btc: Prepared) -> tuple[list[EnvData], list[EnvData]]:
    """The policy was trained on BTC's training rows; the update arrives with the next (held-out) stretch."""
    return [btc.train], [btc.test]


def test_fisher_is_a_non_negative_finite_diagonal_per_parameter(
    quick_result: MetaTrainResult, old_new: tuple[list[EnvData], list[EnvData]]
) -> None:
    fisher = fisher_information(quick_result.module, old_new[0], CONFIG, samples=8)
    names = [name for name, _ in quick_result.module.named_parameters()]
    assert list(fisher) == names
    for name, p in quick_result.module.named_parameters():
        assert fisher[name].shape == p.shape
        assert bool((fisher[name] >= 0).all()) and bool(fisher[name].isfinite().all())
    assert float(fisher[names[-1]].sum()) > 0  # the output bias drives every action


def test_ewc_update_measures_forgetting_and_a_large_lambda_holds_the_old_parameters(
    quick_result: MetaTrainResult, old_new: tuple[list[EnvData], list[EnvData]]
) -> None:
    # Given a trained policy and new data
    old, new = old_new
    start = parameter_vector(quick_result.module)

    # When it is updated with a heavy EWC penalty and, from the same seed, without one
    result = ewc_update(quick_result.module, old, new, CONFIG, ewc_lambda=1e4, epochs=3, fisher_samples=8)

    # Then the degradation on the old data is measured both ways
    for value in (result.degradation_pct, result.degradation_pct_without_ewc, result.old_score_after):
        assert math.isfinite(value)
    expected = 100 * (result.old_score_before - result.old_score_after) / abs(result.old_score_before)
    assert result.degradation_pct == pytest.approx(expected)
    # and the penalty kept the parameters nearer the old ones than the plain update did
    assert 0 < result.param_shift < 0.5 * result.param_shift_without_ewc
    # without touching the module it was given
    np.testing.assert_array_equal(parameter_vector(quick_result.module), start)


def test_ewc_with_zero_lambda_is_exactly_the_plain_update(
    quick_result: MetaTrainResult, old_new: tuple[list[EnvData], list[EnvData]]
) -> None:
    old, new = old_new
    result = ewc_update(quick_result.module, old, new, CONFIG, ewc_lambda=0.0, epochs=2, fisher_samples=4)
    assert result.param_shift == result.param_shift_without_ewc
    assert result.degradation_pct == result.degradation_pct_without_ewc
    np.testing.assert_array_equal(parameter_vector(result.module), parameter_vector(result.module_without_ewc))
