"""The experiment review after every cycle ("Close the cycle"): guardrails, automatic rollback, canary steps.

For each running experiment: read its figures (``ffe.adapters.experiment_results``), let
``ffe.domain.guardrails.evaluate`` decide, apply the verdict through the experiment store, and emit the
experiment metrics. Safe when two cycles close at once: an advance names the step it saw
(``expected_step``) so only one of them moves the canary, and a rollback of an experiment that is no longer
running (the other review, or a person, got there first) is a ``skipped`` outcome, not an error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ffe.domain.errors import InvalidTransitionError
from ffe.domain.experiment_stats import Comparison
from ffe.domain.experiments import Experiment, ExperimentStatus, Trigger
from ffe.domain.guardrails import Verdict, VerdictKind, evaluate
from ffe.domain.ports import ExperimentLifecycle, ExperimentResults
from ffe.observability import emit
from ffe.settings import ExperimentSettings

logger = logging.getLogger(__name__)

OutcomeKind = Literal["rollback", "advance", "wait", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """What the review did with one experiment: ``rollback``/``advance`` applied, ``wait``, ``skipped`` (the
    verdict no longer applied: another review or a person changed the experiment first), or ``failed``."""

    experiment_id: str
    kind: OutcomeKind
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def review_experiments(
    store: ExperimentLifecycle,
    results: ExperimentResults,
    now: datetime,
    actor: str,
    settings: ExperimentSettings,
) -> list[ReviewOutcome]:
    """Review every running experiment once; one experiment's failure is its outcome, not the others'."""
    if not settings.experiment_review:
        return []
    outcomes = []
    for experiment in store.list(ExperimentStatus.RUNNING):
        try:
            outcomes.append(_review(store, results, experiment, now, actor))
        except Exception as exc:
            logger.exception("experiment review failed", extra={"experiment": experiment.id})
            outcomes.append(ReviewOutcome(experiment.id, "failed", f"{type(exc).__name__}: {exc}"))
    return outcomes


def step_started_at(store: ExperimentLifecycle, experiment: Experiment) -> datetime:
    """When the experiment's current step began: its latest transition into running at that step (the start, a
    resume, or the canary's advance), else its creation."""
    started = [
        t.at
        for t in store.transitions(experiment.id)
        if t.to_status is ExperimentStatus.RUNNING and t.to_step == experiment.step
    ]
    return max(started) if started else experiment.created_at


def _review(
    store: ExperimentLifecycle, results: ExperimentResults, experiment: Experiment, now: datetime, actor: str
) -> ReviewOutcome:
    began = step_started_at(store, experiment)
    stats_now = results.compare(experiment.id)
    step_stats = results.compare(experiment.id, recorded_since=began)
    cycles = results.cycle_latency_p95(experiment.id, experiment.guardrails.sustained_cycles)
    verdict = evaluate(experiment, stats_now, step_stats, list(cycles), now, began)
    _emit_performance(experiment.id, stats_now)
    evidence = {**verdict.evidence, "comparison": stats_now.to_json()}
    if verdict.kind is VerdictKind.ROLLBACK:
        return _rollback(store, experiment, verdict, evidence, actor)
    if verdict.kind is VerdictKind.ADVANCE:
        return _advance(store, experiment, verdict, evidence, actor)
    emit("experiment_share", experiment.share, experiment=experiment.id)
    return ReviewOutcome(experiment.id, "wait", verdict.reason, verdict.evidence)


def _rollback(
    store: ExperimentLifecycle, experiment: Experiment, verdict: Verdict, evidence: dict[str, Any], actor: str
) -> ReviewOutcome:
    try:
        store.transition(
            experiment.id, ExperimentStatus.ROLLED_BACK, actor, Trigger.GUARDRAIL, verdict.reason, evidence
        )
    except InvalidTransitionError as exc:
        return ReviewOutcome(experiment.id, "skipped", f"rollback not applied: {exc}", verdict.evidence)
    emit("experiment_rollbacks", 1)
    emit("experiment_transitions", 1, to_status=ExperimentStatus.ROLLED_BACK.value, trigger=Trigger.GUARDRAIL.value)
    emit("experiment_share", 0.0, experiment=experiment.id)
    logger.error(
        "experiment rolled back by a guardrail",
        extra={"experiment": experiment.id, "reason": verdict.reason, "evidence": verdict.evidence},
    )
    return ReviewOutcome(experiment.id, "rollback", verdict.reason, verdict.evidence)


def _advance(
    store: ExperimentLifecycle, experiment: Experiment, verdict: Verdict, evidence: dict[str, Any], actor: str
) -> ReviewOutcome:
    try:
        advanced = store.advance(
            experiment.id, actor, Trigger.CANARY, verdict.reason, evidence, expected_step=experiment.step
        )
    except InvalidTransitionError as exc:
        return ReviewOutcome(experiment.id, "skipped", f"advance not applied: {exc}", verdict.evidence)
    emit("experiment_transitions", 1, to_status=ExperimentStatus.RUNNING.value, trigger=Trigger.CANARY.value)
    emit("experiment_share", advanced.share, experiment=experiment.id)
    return ReviewOutcome(experiment.id, "advance", verdict.reason, verdict.evidence)


def _emit_performance(experiment_id: str, stats: Comparison) -> None:
    figures: list[tuple[str, str, float | None]] = [("both", "agreement_rate", stats.agreement_rate)]
    for arm in ("control", "treatment"):
        s = stats.control if arm == "control" else stats.treatment
        figures += [(arm, "sharpe", s.sharpe), (arm, "signal_pnl", s.signal_pnl), (arm, "max_drawdown", s.max_drawdown)]
    for arm, metric, value in figures:
        if value is not None and math.isfinite(value):
            emit("experiment_performance", value, experiment=experiment_id, arm=arm, metric=metric)
