"""``ffe.evaluation.walk_forward.folds``: expanding windows whose test bars are never inside their training range."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffe.evaluation.walk_forward import Fold, folds


def test_folds_cut_the_tail_into_contiguous_test_windows() -> None:
    assert folds(100, 3, 40) == [Fold(0, 40, 40, 60), Fold(0, 60, 60, 80), Fold(0, 80, 80, 100)]


def test_the_last_fold_takes_the_remainder() -> None:
    assert folds(11, 2, 4)[-1] == Fold(0, 7, 7, 11)


@pytest.mark.parametrize(("n", "k", "min_train"), [(10, 0, 5), (10, 2, 0), (10, 6, 5), (10, 1, 10)])
def test_impossible_folds_are_refused(n: int, k: int, min_train: int) -> None:
    with pytest.raises(ValueError, match=r"need folds|no test block"):
        folds(n, k, min_train)


@given(st.integers(2, 5000), st.integers(1, 20), st.integers(1, 4999))
def test_no_test_bar_is_ever_trained_on_and_folds_are_ordered(n: int, k: int, min_train: int) -> None:
    if (n - min_train) // k < 1:
        with pytest.raises(ValueError):
            folds(n, k, min_train)
        return
    cuts = folds(n, k, min_train)
    assert len(cuts) == k
    assert cuts[0].test_lo == min_train and cuts[-1].test_hi == n  # the test windows cover the tail
    for fold in cuts:
        assert fold.train_lo == 0 and fold.train_hi == fold.test_lo < fold.test_hi  # expanding, non-empty
        assert not set(range(fold.test_lo, fold.test_hi)) & set(range(fold.train_lo, fold.train_hi))
    for a, b in itertools.pairwise(cuts):
        assert a.test_hi == b.test_lo and a.train_hi < b.train_hi  # contiguous, non-overlapping, in order
