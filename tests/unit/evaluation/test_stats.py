"""The walk-forward report's statistics (ffe.evaluation.stats): known values, bootstrap intervals, paired
bootstrap, and the probabilistic and deflated Sharpe ratios against hand-computed and published figures."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.backtest.engine import Metrics
from ffe.domain import performance
from ffe.evaluation.stats import (
    Interval,
    block_bootstrap_ci,
    default_block,
    deflated_sharpe,
    expected_max_sharpe,
    max_drawdown,
    prob_outperforms,
    probabilistic_sharpe,
    sharpe,
    sortino,
    total_return,
)

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _returns(seed: int, n: int, mean: float = 0.0005, sd: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, size=n)


def test_constant_positive_series_has_zero_sharpe_and_sortino_by_convention() -> None:
    # Given a series with no variation (and no losing bar)
    r = np.full(50, 0.001)
    # Then Sharpe is 0.0 (zero standard deviation) and so is Sortino (no downside)
    assert sharpe(r, 252) == 0.0
    assert sortino(r, 252) == 0.0


def test_sharpe_and_sortino_of_a_hand_computed_example() -> None:
    """r = [0.02, 0, 0.04, -0.02], 100 periods a year.

    mean 0.01; deviations 0.01, -0.01, 0.03, -0.03; sample variance 0.002 / 3; Sharpe = 0.01 / sqrt(0.002/3)
    * sqrt(100) = sqrt(0.15) * 10 = sqrt(15). Downside deviation sqrt(0.02² / 4) = 0.01; Sortino = 0.01 / 0.01
    * 10 = 10.
    """
    r = [0.02, 0.0, 0.04, -0.02]
    assert sharpe(r, 100) == pytest.approx(math.sqrt(15.0), rel=1e-12)
    assert sortino(r, 100) == pytest.approx(10.0, rel=1e-12)


def test_max_drawdown_and_total_return_compound_from_one() -> None:
    # Equity 1, 1.1, 0.55, 0.66: the fall from 1.1 to 0.55 is 50 %, the whole run -34 %
    assert max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(0.5, rel=1e-12)
    assert total_return([0.1, -0.5, 0.2]) == pytest.approx(-0.34, rel=1e-12)
    # A loss on the first bar is a drawdown from the starting equity of 1.0
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1, rel=1e-12)
    # A series that never falls has none, and an empty series returns nothing
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert total_return([]) == 0.0


def test_figures_are_the_backtesters_own() -> None:
    # The report's columns are the backtester's definitions (Metrics' fields), applied to compounded returns
    assert {"sharpe", "sortino", "max_drawdown", "total_return"} <= set(Metrics.__dataclass_fields__)
    r = _returns(7, 300)
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    assert sharpe(r, 252) == performance.sharpe(r, 252)
    assert sortino(r, 252) == performance.sortino(r, 252)
    assert max_drawdown(r) == performance.max_drawdown(equity)
    assert total_return(r) == pytest.approx(equity[-1] - 1.0, rel=1e-12)


@pytest.mark.parametrize(("n", "block"), [(1, 1), (8, 2), (27, 3), (1000, 10), (2000, 13), (3, 1)])
def test_default_block_is_the_cube_root_rounded(n: int, block: int) -> None:
    assert default_block(n) == block


def test_default_block_refuses_an_empty_series() -> None:
    with pytest.raises(ValueError, match="at least one"):
        default_block(0)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, n=st.integers(min_value=60, max_value=300))
def test_interval_contains_the_estimate(seed: int, n: int) -> None:
    r = _returns(seed, n)
    for statistic in (np.mean, lambda x: sharpe(x, 252)):
        ci = block_bootstrap_ci(r, statistic, n_boot=400, seed=seed)
        assert ci.low <= ci.estimate <= ci.high
        assert ci.estimate == pytest.approx(float(statistic(r)), rel=1e-12)
        assert ci.level == 0.95


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_interval_narrows_with_more_data(seed: int) -> None:
    # Given the first 100 returns of a series and all 1600 of it (sixteen times the data)
    r = _returns(seed, 1600)
    small = block_bootstrap_ci(r[:100], np.mean, n_boot=400, seed=seed)
    large = block_bootstrap_ci(r, np.mean, n_boot=400, seed=seed)
    # Then the interval of the mean is narrower on more data (about four times, by sqrt(16))
    assert large.high - large.low < small.high - small.low


def test_a_higher_level_gives_a_wider_interval() -> None:
    r = _returns(3, 400)
    narrow = block_bootstrap_ci(r, np.mean, level=0.5, n_boot=500)
    wide = block_bootstrap_ci(r, np.mean, level=0.99, n_boot=500)
    assert wide.low < narrow.low <= narrow.high < wide.high


def test_bootstrap_is_deterministic_by_seed() -> None:
    r = _returns(11, 250)
    stat = lambda x: sharpe(x, 252)  # noqa: E731
    first = block_bootstrap_ci(r, stat, n_boot=300, seed=5)
    assert block_bootstrap_ci(r, stat, n_boot=300, seed=5) == first
    assert isinstance(first, Interval)
    assert block_bootstrap_ci(r, stat, n_boot=300, seed=6) != first
    a, b = _returns(1, 250), _returns(2, 250)
    assert prob_outperforms(a, b, 252, n_boot=300, seed=5) == prob_outperforms(a, b, 252, n_boot=300, seed=5)


def test_block_of_the_whole_series_resamples_rotations() -> None:
    # A circular block as long as the series is a rotation: the mean of every resample is the mean itself
    r = _returns(4, 40)
    ci = block_bootstrap_ci(r, np.mean, block=40, n_boot=50)
    assert ci.low == pytest.approx(ci.estimate, rel=1e-9)
    assert ci.high == pytest.approx(ci.estimate, rel=1e-9)


@pytest.mark.parametrize(
    "bad",
    [[], [[0.1, 0.2], [0.3, 0.4]], [0.1, float("nan"), 0.2], [0.1, float("inf")]],
    ids=["empty", "2-D", "nan", "inf"],
)
def test_bootstrap_refuses_a_broken_series(bad: list[Any]) -> None:
    with pytest.raises(ValueError, match="series"):
        block_bootstrap_ci(bad, np.mean, n_boot=10)


@pytest.mark.parametrize("kwargs", [{"block": 0}, {"block": 11}, {"n_boot": 0}, {"level": 1.0}])
def test_bootstrap_refuses_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        block_bootstrap_ci(np.linspace(-0.01, 0.01, 10), np.mean, **kwargs)  # type: ignore[arg-type]


def test_paired_bootstrap_dominating_series_outperforms_almost_surely() -> None:
    # Given b = a less a constant 0.1 % per bar: same spread, lower mean, on every resample
    a = _returns(21, 300)
    assert prob_outperforms(a, a - 0.001, 252, n_boot=500) == 1.0
    assert prob_outperforms(a - 0.001, a, 252, n_boot=500) == 0.0


def test_paired_bootstrap_of_identical_series_is_a_coin_toss() -> None:
    a = _returns(22, 300)
    assert prob_outperforms(a, a.copy(), 252, n_boot=500) == pytest.approx(0.5, abs=0.05)


def test_paired_bootstrap_refuses_unaligned_series() -> None:
    with pytest.raises(ValueError, match="aligned"):
        prob_outperforms(_returns(1, 100), _returns(2, 99), 252, n_boot=10)


def test_probabilistic_sharpe_by_hand() -> None:
    """PSR = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurtosis - 1)/4 SR^2)), Bailey & Lopez de Prado
    (2012), "The Sharpe ratio efficient frontier".

    SR = 0.1, SR* = 0, n = 101, skew 0, kurtosis 3: variance term 1 + 2/4 * 0.01 = 1.005;
    z = 0.1 * 10 / sqrt(1.005) = 0.997509; Phi(0.997509) = 0.840741.
    """
    assert probabilistic_sharpe(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(0.840741, abs=1e-6)
    # At the benchmark itself the probability is one half, whatever the moments
    assert probabilistic_sharpe(0.2, 0.2, 50, -1.0, 6.0) == pytest.approx(0.5, abs=1e-12)


def test_probabilistic_sharpe_refuses_impossible_inputs() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        probabilistic_sharpe(0.1, 0.0, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="non-positive"):
        probabilistic_sharpe(1.0, 0.0, 100, 5.0, 3.0)  # 1 - 5 + 0.5 < 0


def test_deflated_sharpe_by_hand() -> None:
    """DSR = PSR(SR0), SR0 = sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g = 0.5772156649
    (Bailey & Lopez de Prado 2014, "The deflated Sharpe ratio", eq. 2).

    Trials 0, 0.1, 0.2: N = 3, sample variance 0.01, sqrt 0.1; Phi^-1(2/3) = 0.430727, Phi^-1(1 - 1/(3e)) =
    1.161957; SR0 = 0.1 (0.422784 * 0.430727 + 0.577216 * 1.161957) = 0.085280.
    SR = 0.2, n = 101, skew -0.5, kurtosis 4: variance term 1 + 0.5 * 0.2 + 3/4 * 0.04 = 1.13;
    z = (0.2 - 0.085280) * 10 / sqrt(1.13) = 1.079191; Phi(z) = 0.859749.
    """
    assert expected_max_sharpe([0.0, 0.1, 0.2]) == pytest.approx(0.085280, abs=1e-6)
    assert deflated_sharpe(0.2, 101, -0.5, 4.0, [0.0, 0.1, 0.2]) == pytest.approx(0.859749, abs=1e-6)


def test_deflated_sharpe_reproduces_the_papers_example() -> None:
    """Bailey & Lopez de Prado (2014), section "A numerical example": annualised SR 2.5 over 1250 daily returns
    (250 a year), 100 trials whose annualised Sharpe variance is 0.5, skew -3, kurtosis 10: E[max SR] = 0.1132
    per day and DSR = 0.9004. Per-period figures: SR = 2.5 / sqrt(250), V = 0.5 / 250."""
    x = np.arange(100.0)
    trials = (x - x.mean()) / x.std(ddof=1) * math.sqrt(0.5 / 250)
    assert expected_max_sharpe(list(trials)) == pytest.approx(0.1132, abs=1e-4)
    assert deflated_sharpe(2.5 / math.sqrt(250), 1250, -3.0, 10.0, list(trials)) == pytest.approx(0.9004, abs=1e-4)


def test_deflated_sharpe_falls_as_trials_grow() -> None:
    # Given trial Sharpe ratios of the same spread (sample sd 0.05) but ever more of them
    figures = []
    for n in (2, 5, 10, 50, 200, 1000):
        x = np.arange(float(n))
        trials = (x - x.mean()) / x.std(ddof=1) * 0.05
        figures.append(deflated_sharpe(0.1, 500, 0.0, 3.0, list(trials)))
    # Then the deflated Sharpe ratio of the same result falls with every added trial
    assert all(later < earlier for earlier, later in itertools.pairwise(figures))
    # And one trial is not deflated: it is the probabilistic Sharpe ratio against 0
    assert deflated_sharpe(0.1, 500, 0.0, 3.0, [0.3]) == probabilistic_sharpe(0.1, 0.0, 500, 0.0, 3.0)
