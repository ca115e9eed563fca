"""``ffe.evaluation.walk_forward.folds``: expanding windows whose test bars are never inside their training range."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffe.evaluation.walk_forward import Fold, calendar_cuts, folds


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


T0 = datetime(2019, 1, 1, tzinfo=UTC)
days = st.integers(0, 2000).map(lambda d: T0 + timedelta(days=d))


@given(st.dictionaries(st.sampled_from("ABCDEF"), st.tuples(days, days), min_size=1))
def test_a_bundle_never_reads_a_bar_as_late_as_a_test_window_inside_that_series_history(
    spans: dict[str, tuple[datetime, datetime]],
) -> None:
    firsts = {s: min(a, b) for s, (a, b) in spans.items()}
    starts = {s: max(a, b) + timedelta(hours=1) for s, (a, b) in spans.items()}  # each test starts after its first bar
    cuts = calendar_cuts(starts, firsts)
    for s, cut in cuts.items():
        assert firsts[s] < cut <= starts[s]  # something to train on, nothing of its own test window
        for start in starts.values():
            if firsts[s] < start:  # another series' test window starting inside this one's history bounds it
                assert cut <= start
        assert cut in {starts[s], *starts.values()}  # it stops at a test window's start, never earlier


def test_series_of_other_years_do_not_bound_each_other() -> None:
    # SPX 1999-2018 beside BTCUSD 2019: BTC's 2019 test window starts after SPX's own, SPX's before BTC's history
    firsts = {"SPX": datetime(1999, 1, 4, tzinfo=UTC), "BTCUSD": datetime(2019, 1, 1, tzinfo=UTC)}
    starts = {"SPX": datetime(2009, 1, 5, tzinfo=UTC), "BTCUSD": datetime(2019, 5, 1, tzinfo=UTC)}
    assert calendar_cuts(starts, firsts) == starts
    # ...but MSFT's window from 2002 bounds SPX's training in the same fold, and ETH's bounds BTC's
    firsts |= {"MSFT": datetime(1986, 3, 13, tzinfo=UTC), "ETHUSD": datetime(2019, 1, 1, tzinfo=UTC)}
    starts |= {"MSFT": datetime(2002, 1, 2, tzinfo=UTC), "ETHUSD": datetime(2019, 4, 10, tzinfo=UTC)}
    cuts = calendar_cuts(starts, firsts)
    assert cuts["SPX"] == starts["MSFT"] and cuts["BTCUSD"] == starts["ETHUSD"]
    assert cuts["MSFT"] == starts["MSFT"] and cuts["ETHUSD"] == starts["ETHUSD"]
