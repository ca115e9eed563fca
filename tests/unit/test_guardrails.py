"""Every branch of the guardrails and the canary's verdict (ffe.domain.guardrails)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ffe.domain.experiment_stats import ArmStats, Comparison
from ffe.domain.experiments import (
    CanaryPlan,
    CanaryStep,
    Experiment,
    ExperimentStatus,
    Guardrails,
    Mode,
)
from ffe.domain.guardrails import VerdictKind, degradation, evaluate

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PLAN = CanaryPlan(
    (CanaryStep(0.05, 10, timedelta(hours=1)), CanaryStep(0.25, 10, timedelta(hours=1)), CanaryStep(1.0, 10))
)


def experiment(mode: Mode = Mode.SPLIT, step: int = 0, **rails: object) -> Experiment:
    return Experiment(
        "e1",
        "v1",
        "v2",
        mode,
        NOW - timedelta(days=1),
        plan=PLAN,
        step=step,
        guardrails=Guardrails(**rails),  # type: ignore[arg-type]
        status=ExperimentStatus.RUNNING,
    )


def arm(**figures: object) -> ArmStats:
    return replace(ArmStats(returns=50, sharpe=1.0, signal_pnl=0.1, max_drawdown=0.1), **figures)  # type: ignore[arg-type]


def comparison(decisions: int = 50, control: ArmStats | None = None, treatment: ArmStats | None = None) -> Comparison:
    return Comparison("e1", None, None, decisions, 1.0, 0.0, 0.0, 0.0, control or arm(), treatment or arm())


def verdict(
    exp: Experiment | None = None,
    stats: Comparison | None = None,
    step: Comparison | None = None,
    cycles: list[float | None] | None = None,
    started: timedelta = timedelta(hours=2),
):
    return evaluate(exp or experiment(), stats or comparison(), step or comparison(), cycles or [], NOW, NOW - started)


def test_latency_sustained_over_the_last_n_cycles_rolls_back() -> None:
    v = verdict(cycles=[100.0, 250.0, 260.0, 270.0])
    assert v.kind is VerdictKind.ROLLBACK
    assert v.evidence["guardrail"] == "latency" and v.evidence["cycles_p95_ms"] == [250.0, 260.0, 270.0]


@pytest.mark.parametrize(
    "cycles",
    [[250.0, 260.0], [250.0, 150.0, 260.0], [300.0, 300.0, 300.0, 100.0], [250.0, 200.0, 260.0]],
    ids=["fewer-than-n", "one-off-between", "recovered", "at-the-limit-is-not-over"],
)
def test_latency_breaches_that_are_not_sustained_do_not_roll_back(cycles: list[float | None]) -> None:
    assert verdict(cycles=cycles).kind is VerdictKind.ADVANCE


def test_cycles_without_treatment_decisions_neither_count_nor_break_a_run() -> None:
    assert verdict(cycles=[250.0, None, 260.0, None, 270.0]).kind is VerdictKind.ROLLBACK


def test_any_violation_not_blocked_in_the_treatment_rolls_back_and_the_controls_does_not() -> None:
    v = verdict(stats=comparison(treatment=arm(violations_not_blocked=1)))
    assert v.kind is VerdictKind.ROLLBACK and v.evidence["guardrail"] == "violation_not_blocked"
    assert verdict(stats=comparison(control=arm(violations_not_blocked=3))).kind is VerdictKind.ADVANCE


@pytest.mark.parametrize(
    ("metric", "control", "treatment", "rolled_back"),
    [
        ("sharpe", 1.0, 0.69, True),  # 31 % lower
        ("sharpe", 1.0, 0.71, False),  # 29 % lower
        ("sharpe", -1.0, -1.31, True),  # a negative control: 31 % further below
        ("sharpe", -1.0, -1.29, False),
        ("sharpe", -1.0, 0.5, False),  # better than a losing control
        ("sharpe", 0.0, -0.01, True),  # a flat control: any worse treatment is degraded
        ("sharpe", 0.0, 0.0, False),
        ("pnl", 0.10, 0.06, True),
        ("pnl", 0.10, 0.08, False),
        ("max_drawdown", 0.10, 0.14, True),  # 40 % deeper
        ("max_drawdown", 0.10, 0.12, False),  # 20 % deeper
        ("max_drawdown", 0.10, 0.01, False),  # shallower is better
        ("max_drawdown", 0.0, 0.001, True),
    ],
)
def test_performance_degradation_per_metric(metric: str, control: float, treatment: float, rolled_back: bool) -> None:
    figure = {"sharpe": "sharpe", "pnl": "signal_pnl", "max_drawdown": "max_drawdown"}[metric]
    stats = comparison(control=arm(**{figure: control}), treatment=arm(**{figure: treatment}))
    v = verdict(experiment(metric=metric), stats)
    assert (v.kind is VerdictKind.ROLLBACK) is rolled_back, v
    if rolled_back:
        assert v.evidence["guardrail"] == "performance" and v.evidence["metric"] == metric


def test_degradation_signs() -> None:
    assert degradation("sharpe", 2.0, 1.0) == pytest.approx(0.5)
    assert degradation("sharpe", 2.0, 3.0) == pytest.approx(-0.5)
    assert degradation("max_drawdown", 0.2, 0.3) == pytest.approx(0.5)
    assert degradation("pnl", 0.0, -1.0) == float("inf")
    assert degradation("pnl", 0.0, 1.0) == 0.0


def test_performance_is_not_judged_under_the_minimum_sample() -> None:
    losing = arm(sharpe=-5.0)
    assert verdict(stats=comparison(treatment=replace(losing, returns=9))).kind is VerdictKind.ADVANCE
    assert verdict(stats=comparison(treatment=replace(losing, returns=10))).kind is VerdictKind.ROLLBACK
    assert verdict(stats=comparison(control=replace(arm(), returns=9), treatment=losing)).kind is VerdictKind.ADVANCE


def test_a_metric_that_cannot_be_computed_is_not_judged() -> None:
    assert verdict(stats=comparison(treatment=arm(sharpe=None))).kind is VerdictKind.ADVANCE


def test_advance_waits_for_the_steps_decisions_and_its_duration() -> None:
    few = verdict(step=comparison(decisions=9))
    assert few.kind is VerdictKind.WAIT and few.evidence["step_decisions"] == 9
    early = verdict(started=timedelta(minutes=59))
    assert early.kind is VerdictKind.WAIT and "has run" in early.reason
    ready = verdict(step=comparison(decisions=10), started=timedelta(hours=1))
    assert ready.kind is VerdictKind.ADVANCE and ready.evidence["next_share"] == 0.25


def test_a_failing_guardrail_rolls_back_even_when_the_step_is_ready() -> None:
    v = verdict(stats=comparison(treatment=arm(violations_not_blocked=1)), step=comparison(decisions=100))
    assert v.kind is VerdictKind.ROLLBACK


def test_the_last_step_waits_for_a_person_to_promote() -> None:
    v = verdict(experiment(step=2), step=comparison(decisions=1000), started=timedelta(days=30))
    assert v.kind is VerdictKind.WAIT and "person" in v.reason


def test_shadow_mode_has_no_steps_but_its_guardrails_roll_back() -> None:
    assert verdict(experiment(Mode.SHADOW)).kind is VerdictKind.WAIT
    assert verdict(experiment(Mode.SHADOW), cycles=[300.0, 300.0, 300.0]).kind is VerdictKind.ROLLBACK
    assert verdict(experiment(Mode.SHADOW), comparison(treatment=arm(sharpe=0.1))).kind is VerdictKind.ROLLBACK
