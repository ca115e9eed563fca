"""The review after a cycle (ffe.experiment_review) over an in-memory store: verdicts applied, metrics emitted,
a verdict that no longer applies skipped, one experiment's failure kept to itself."""

from __future__ import annotations

import builtins
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ffe.domain.errors import InvalidTransitionError
from ffe.domain.experiment_stats import ArmStats, Comparison
from ffe.domain.experiments import (
    CanaryPlan,
    CanaryStep,
    Experiment,
    ExperimentStatus,
    Mode,
    Transition,
    Trigger,
    check_transition,
    next_step,
)
from ffe.experiment_review import review_experiments, step_started_at
from ffe.settings import ExperimentSettings

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PLAN = CanaryPlan((CanaryStep(0.05, 5, timedelta(hours=1)), CanaryStep(1.0, 5)))


class Store:
    """Just enough of ExperimentStore, in memory; ``preempt`` changes the experiment before the review's write."""

    def __init__(self, *experiments: Experiment) -> None:
        self.experiments = {e.id: e for e in experiments}
        self.log: list[Transition] = [
            Transition(
                e.id,
                ExperimentStatus.DRAFT,
                ExperimentStatus.RUNNING,
                0,
                0,
                NOW - timedelta(hours=2),
                "me",
                Trigger.MANUAL,
            )
            for e in experiments
        ]
        self.preempt: ExperimentStatus | None = None

    def list(self, status: ExperimentStatus | None = None) -> builtins.list[Experiment]:
        return [e for e in self.experiments.values() if status is None or e.status is status]

    def transitions(self, experiment_id: str) -> builtins.list[Transition]:
        return [t for t in self.log if t.experiment_id == experiment_id]

    def _interfere(self, experiment_id: str) -> Experiment:
        if self.preempt is not None:
            self.experiments[experiment_id] = replace(self.experiments[experiment_id], status=self.preempt)
        return self.experiments[experiment_id]

    def transition(self, experiment_id, to, actor, trigger, reason="", evidence=None) -> Experiment:
        current = self._interfere(experiment_id)
        check_transition(current, to)
        self.experiments[experiment_id] = changed = replace(current, status=to)
        self.log.append(
            Transition(
                experiment_id,
                current.status,
                to,
                current.step,
                current.step,
                NOW,
                actor,
                trigger,
                reason,
                evidence or {},
            )
        )
        return changed

    def advance(self, experiment_id, actor, trigger, reason="", evidence=None, expected_step=None) -> Experiment:
        current = self._interfere(experiment_id)
        if expected_step is not None and current.step != expected_step:
            raise InvalidTransitionError("the canary moved")
        self.experiments[experiment_id] = changed = replace(current, step=next_step(current))
        self.log.append(
            Transition(
                experiment_id,
                current.status,
                current.status,
                current.step,
                changed.step,
                NOW,
                actor,
                trigger,
                reason,
                evidence or {},
            )
        )
        return changed


class Results:
    def __init__(self, stats: dict[str, Comparison], cycles: dict[str, list[float]] | None = None) -> None:
        self.stats, self.cycles = stats, cycles or {}
        self.calls: list[tuple[str, datetime | None]] = []

    def compare(self, experiment_id, since=None, until=None, *, recorded_since=None) -> Comparison:
        self.calls.append((experiment_id, recorded_since))
        return self.stats[experiment_id]

    def cycle_latency_p95(self, experiment_id: str, cycles: int) -> list[float]:
        return self.cycles.get(experiment_id, [])


def running(experiment_id: str, mode: Mode = Mode.SPLIT) -> Experiment:
    return Experiment(
        experiment_id, "v1", "v2", mode, NOW - timedelta(days=1), plan=PLAN, status=ExperimentStatus.RUNNING
    )


def stats(experiment_id: str, decisions: int = 10, **treatment: Any) -> Comparison:
    healthy = ArmStats(returns=10, sharpe=1.0, signal_pnl=0.1, max_drawdown=0.05)
    return Comparison(experiment_id, None, None, decisions, 0.8, 0.0, 0.0, 0.0, healthy, replace(healthy, **treatment))


def emitted(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and "_aws" in line]


def names(docs: list[dict[str, Any]]) -> list[str]:
    return [d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for d in docs]


def test_rollback_advance_and_wait_are_applied_and_recorded_with_their_metrics(capsys) -> None:
    store = Store(running("bad"), running("good"), running("young"))
    results = Results(
        {"bad": stats("bad", violations_not_blocked=1), "good": stats("good"), "young": stats("young", decisions=2)}
    )
    outcomes = review_experiments(store, results, NOW, "guardrail:test", ExperimentSettings())
    assert {o.experiment_id: o.kind for o in outcomes} == {"bad": "rollback", "good": "advance", "young": "wait"}
    assert store.experiments["bad"].status is ExperimentStatus.ROLLED_BACK
    [rollback] = [t for t in store.log if t.experiment_id == "bad" and t.to_status is ExperimentStatus.ROLLED_BACK]
    assert rollback.trigger is Trigger.GUARDRAIL and rollback.actor == "guardrail:test"
    assert rollback.evidence["violations_not_blocked"] == 1 and "comparison" in rollback.evidence
    assert store.experiments["good"].step == 1 and store.log[-1].trigger is Trigger.CANARY
    assert store.experiments["young"].step == 0
    docs = emitted(capsys.readouterr().out)
    assert names(docs).count("experiment_rollbacks") == 1
    transitions = [(d["to_status"], d["trigger"]) for d in docs if "experiment_transitions" in d]
    assert sorted(transitions) == [("rolled_back", "guardrail"), ("running", "canary")]
    shares = {d["experiment"]: d["experiment_share"] for d in docs if "experiment_share" in d}
    assert shares == {"bad": [0.0], "good": [1.0], "young": [0.05]}
    performance = {(d["experiment"], d["arm"], d["metric"]) for d in docs if "experiment_performance" in d}
    assert ("good", "both", "agreement_rate") in performance and ("good", "treatment", "sharpe") in performance


def test_the_step_is_counted_from_when_it_began(capsys) -> None:
    store = Store(running("e1"))
    results = Results({"e1": stats("e1")})
    review_experiments(store, results, NOW, "guardrail:test", ExperimentSettings())
    assert results.calls == [("e1", None), ("e1", NOW - timedelta(hours=2))]
    assert step_started_at(store, store.experiments["e1"]) == NOW  # the advance just made began step 1


def test_a_rollback_of_an_experiment_someone_else_ended_is_skipped_not_an_error(capsys) -> None:
    store = Store(running("e1"))
    store.preempt = ExperimentStatus.STOPPED
    [outcome] = review_experiments(store, Results({"e1": stats("e1", sharpe=-1.0)}), NOW, "g", ExperimentSettings())
    assert outcome.kind == "skipped" and "rollback not applied" in outcome.reason
    assert "experiment_rollbacks" not in names(emitted(capsys.readouterr().out))


def test_an_advance_someone_else_made_is_skipped(capsys) -> None:
    store = Store(running("e1"))
    results = Results({"e1": stats("e1")})
    original = store.advance

    def raced(*args: Any, **kwargs: Any) -> Experiment:
        store.experiments["e1"] = replace(store.experiments["e1"], step=1)  # another review got there first
        return original(*args, **kwargs)

    store.advance = raced  # type: ignore[method-assign]
    [outcome] = review_experiments(store, results, NOW, "g", ExperimentSettings())
    assert outcome.kind == "skipped" and store.experiments["e1"].step == 1


def test_one_experiments_failure_is_its_outcome_and_the_others_are_reviewed(capsys) -> None:
    store = Store(running("broken"), running("good"))
    [broken, good] = review_experiments(store, Results({"good": stats("good")}), NOW, "g", ExperimentSettings())
    assert (broken.kind, good.kind) == ("failed", "advance") and "KeyError" in broken.reason


def test_the_review_can_be_switched_off() -> None:
    store = Store(running("e1"))
    settings = ExperimentSettings(experiment_review=False)
    assert review_experiments(store, Results({"e1": stats("e1", sharpe=-9.0)}), NOW, "g", settings) == []
    assert store.experiments["e1"].status is ExperimentStatus.RUNNING
