"""Experiments: consistent assignment, the lifecycle table, and the plan's and guardrails' validation."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffe.domain.errors import InvalidInputError, InvalidTransitionError, PermanentError
from ffe.domain.experiments import (
    CONTROL,
    TRANSITIONS,
    TREATMENT,
    CanaryPlan,
    CanaryStep,
    Experiment,
    ExperimentStatus,
    Guardrails,
    Mode,
    arms_overlap,
    assign,
    check_transition,
    first_conflict,
    guardrails_from_json,
    guardrails_to_json,
    next_step,
    plan_from_json,
    plan_to_json,
)

S = ExperimentStatus
ASSETS = [f"ASSET{i:05d}" for i in range(10_000)]
NOW = datetime(2026, 12, 1, tzinfo=UTC)
experiment_ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=36)


def experiment(**changes: object) -> Experiment:
    base = Experiment("exp-1", "v1", "v2", Mode.SPLIT, NOW)
    return replace(base, **changes)  # type: ignore[arg-type]


# --- assignment -------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(experiment_id=experiment_ids, share=st.floats(min_value=0.0, max_value=1.0))
def test_the_realised_split_over_10000_assets_is_within_2_percent_of_the_share(
    experiment_id: str, share: float
) -> None:
    treated = sum(assign(experiment_id, asset, share) == TREATMENT for asset in ASSETS)
    assert abs(treated / len(ASSETS) - share) <= 0.02


@settings(max_examples=40, deadline=None)
@given(
    experiment_id=experiment_ids,
    shares=st.tuples(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0)).map(sorted),
)
def test_raising_the_share_never_moves_an_asset_from_treatment_to_control(
    experiment_id: str, shares: list[float]
) -> None:
    low, high = shares
    for asset in ASSETS[:2_000]:
        if assign(experiment_id, asset, low) == TREATMENT:
            assert assign(experiment_id, asset, high) == TREATMENT


def test_five_to_twenty_five_percent_only_adds_treated_assets() -> None:
    at_5 = {a for a in ASSETS if assign("canary", a, 0.05) == TREATMENT}
    at_25 = {a for a in ASSETS if assign("canary", a, 0.25) == TREATMENT}
    assert at_5 < at_25
    assert abs(len(at_5) / len(ASSETS) - 0.05) <= 0.02 and abs(len(at_25) / len(ASSETS) - 0.25) <= 0.02


def test_share_zero_is_all_control_and_share_one_all_treatment() -> None:
    assert {assign("e", a, 0.0) for a in ASSETS[:500]} == {CONTROL}
    assert {assign("e", a, 1.0) for a in ASSETS[:500]} == {TREATMENT}


def test_experiments_split_the_same_assets_independently() -> None:
    a = {x for x in ASSETS if assign("exp-a", x, 0.5) == TREATMENT}
    b = {x for x in ASSETS if assign("exp-b", x, 0.5) == TREATMENT}
    assert 0.2 < len(a & b) / len(ASSETS) < 0.3  # about a quarter: the two draws are unrelated


def test_assignment_is_the_same_in_another_process() -> None:
    """No Python ``hash()`` (salted per process): a fresh interpreter with another hash seed agrees."""
    here = "".join("T" if assign("exp-42", a, 0.3) == TREATMENT else "C" for a in ASSETS[:300])
    code = (
        "from ffe.domain.experiments import assign, TREATMENT\n"
        "print(''.join('T' if assign('exp-42', f'ASSET{i:05d}', 0.3) == TREATMENT else 'C' for i in range(300)))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"}
    ).stdout.strip()
    assert there == here


def test_a_pinned_assignment_guards_against_a_change_of_hash() -> None:
    # Changing the hash would reshuffle every running experiment's arms: these points are part of the contract
    # (BLAKE2b-64 of "exp-42\x1f<asset>": BTCUSD 0.985, ETHUSD 0.624, EURUSD 0.444, GBPUSD 0.604).
    assert [assign("exp-42", a, 0.5) for a in ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD")] == [
        CONTROL,
        CONTROL,
        TREATMENT,
        CONTROL,
    ]
    assert assign("exp-42", "GBPUSD", 0.605) == TREATMENT and assign("exp-42", "GBPUSD", 0.604) == CONTROL


# --- who acts ---------------------------------------------------------------------------------------------------


def test_only_a_running_split_experiment_lets_the_treatment_act() -> None:
    plan = CanaryPlan((CanaryStep(1.0),))
    assert experiment(plan=plan, status=S.RUNNING).acting_arm("BTCUSD") == TREATMENT
    assert experiment(plan=plan, status=S.PAUSED).acting_arm("BTCUSD") == CONTROL
    assert experiment(plan=plan, status=S.RUNNING, mode=Mode.SHADOW).acting_arm("BTCUSD") == CONTROL
    scoped = experiment(plan=plan, status=S.RUNNING, assets=frozenset({"ETHUSD"}))
    assert scoped.acting_arm("BTCUSD") == CONTROL and scoped.acting_arm("ETHUSD") == TREATMENT


def test_the_share_is_the_current_steps_in_split_mode_and_zero_in_shadow() -> None:
    assert [experiment(step=i).share for i in range(3)] == [0.05, 0.25, 1.0]
    assert experiment(mode=Mode.SHADOW).share == 0.0


# --- overlap ----------------------------------------------------------------------------------------------------


def test_experiments_overlap_when_they_share_an_asset_or_either_covers_the_universe() -> None:
    btc, eth = experiment(assets=frozenset({"BTCUSD"})), experiment(id="e2", assets=frozenset({"ETHUSD"}))
    both = experiment(id="e3", assets=frozenset({"BTCUSD", "ETHUSD"}))
    universe = experiment(id="e4")
    assert not arms_overlap(btc, eth)
    assert arms_overlap(btc, both) and arms_overlap(eth, both)
    assert arms_overlap(universe, btc) and arms_overlap(eth, universe)


def test_only_running_or_paused_experiments_hold_their_assets() -> None:
    new = experiment(id="new", assets=frozenset({"BTCUSD"}))
    for status in ExperimentStatus:
        other = experiment(id="other", assets=frozenset({"BTCUSD"}), status=status)
        assert (first_conflict(new, [other]) is other) == (status in {S.RUNNING, S.PAUSED})
    assert first_conflict(new, [replace(new, status=S.RUNNING)]) is None  # itself


# --- lifecycle --------------------------------------------------------------------------------------------------

ALLOWED = {
    (S.DRAFT, S.RUNNING),
    (S.DRAFT, S.STOPPED),
    (S.RUNNING, S.PAUSED),
    (S.PAUSED, S.RUNNING),
    (S.RUNNING, S.STOPPED),
    (S.PAUSED, S.STOPPED),
    (S.RUNNING, S.ROLLED_BACK),
    (S.PAUSED, S.ROLLED_BACK),
    (S.RUNNING, S.PROMOTED),
    (S.PROMOTED, S.ROLLED_BACK),
}


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, tos in TRANSITIONS.items() for b in tos} == ALLOWED


@pytest.mark.parametrize("before", list(ExperimentStatus))
@pytest.mark.parametrize("after", list(ExperimentStatus))
def test_every_transition_is_allowed_or_refused_per_the_table(before: S, after: S) -> None:
    at_last_step = experiment(status=before, step=2)  # promotion's own conditions met
    if (before, after) in ALLOWED:
        assert check_transition(at_last_step, after) is after
    else:
        with pytest.raises(InvalidTransitionError) as refused:
            check_transition(at_last_step, after)
        assert before.value in refused.value.reason and after.value in refused.value.reason
        assert isinstance(refused.value, PermanentError)


def test_promotion_waits_for_the_canarys_last_step() -> None:
    with pytest.raises(InvalidTransitionError, match="last step"):
        check_transition(experiment(status=S.RUNNING, step=1), S.PROMOTED)


def test_a_shadow_experiment_is_never_promoted() -> None:
    with pytest.raises(InvalidTransitionError, match="shadow"):
        check_transition(experiment(status=S.RUNNING, mode=Mode.SHADOW, step=2), S.PROMOTED)


def test_the_canary_advances_one_step_at_a_time_while_running_in_split_mode() -> None:
    assert next_step(experiment(status=S.RUNNING)) == 1
    assert next_step(experiment(status=S.RUNNING, step=1)) == 2
    for refused in (
        experiment(status=S.RUNNING, step=2),
        experiment(status=S.PAUSED),
        experiment(status=S.DRAFT),
        experiment(status=S.RUNNING, mode=Mode.SHADOW),
    ):
        with pytest.raises(InvalidTransitionError):
            next_step(refused)


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "why"),
    [
        ((), "at least one step"),
        ((0.05, 0.25), "ends at share 1.0"),
        ((0.25, 0.05, 1.0), "does not exceed"),
        ((0.05, 0.05, 1.0), "does not exceed"),
        ((0.0, 1.0), r"not in \(0, 1\]"),
        ((0.5, 1.5), r"not in \(0, 1\]"),
    ],
)
def test_a_plan_is_increasing_shares_in_0_1_ending_at_1(shares: tuple[float, ...], why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        CanaryPlan(tuple(CanaryStep(s) for s in shares))


def test_a_plan_refuses_negative_minimums() -> None:
    with pytest.raises(InvalidInputError, match="min_decisions"):
        CanaryPlan((CanaryStep(1.0, min_decisions=-1),))
    with pytest.raises(InvalidInputError, match="min_duration"):
        CanaryPlan((CanaryStep(1.0, min_duration=timedelta(seconds=-1)),))


def test_the_default_plan_and_guardrails_are_the_issues() -> None:
    assert [s.share for s in CanaryPlan().steps] == [0.05, 0.25, 1.0]
    assert (Guardrails().latency_p95_ms, Guardrails().max_degradation) == (200.0, 0.30)


@pytest.mark.parametrize(
    "bad",
    [
        {"latency_p95_ms": 0},
        {"max_degradation": 0.0},
        {"max_degradation": 1.5},
        {"metric": "vibes"},
        {"sustained_cycles": 0},
    ],
)
def test_guardrails_refuse_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        Guardrails(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"treatment_version": "v1"}, "same version"),
        ({"treatment_version": ""}, "control and a treatment"),
        ({"assets": frozenset()}, "at least one asset"),
        ({"assets": frozenset({"NOPE"})}, "unknown asset"),
        ({"step": 3}, "outside the plan"),
        ({"created_at": datetime(2026, 12, 1)}, "timezone-aware"),
        ({"id": ""}, "needs an id"),
    ],
)
def test_an_experiment_refuses_nonsense(changes: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        experiment(**changes)


def test_plan_and_guardrails_survive_their_json_shapes() -> None:
    plan = CanaryPlan((CanaryStep(0.1, 10, timedelta(minutes=30)), CanaryStep(1.0, 0, timedelta(0))))
    assert plan_from_json(plan_to_json(plan)) == plan
    guardrails = Guardrails(150.0, 0.2, "pnl", 5)
    assert guardrails_from_json(guardrails_to_json(guardrails)) == guardrails
