"""An experiment's guardrails and canary automation: what the review after a cycle does with it.

Pure: the figures come in (``ffe.domain.experiment_stats.Comparison``), a ``Verdict`` goes out; the application
(``ffe.experiment_review``) applies it through the experiment store.

**Rollback** (any one; checked first, in every mode):

1. latency: the treatment's decision-path latency p95 exceeded ``guardrails.latency_p95_ms`` in each of the
   last ``guardrails.sustained_cycles`` cycles that had treatment-path decisions (a one-off breach waits);
2. a risk violation not blocked (``violation_not_blocked``) on a decision the treatment acted on;
3. performance: with at least the minimum sample (the current step's ``min_decisions``, and 2) of signal
   returns in both arms, the treatment's ``guardrails.metric`` is worse than the control's by more than
   ``guardrails.max_degradation``, relative to the control's magnitude. "Worse" is lower for ``sharpe`` and
   ``pnl`` (signal P&L) and higher for ``max_drawdown``: degradation = (control - treatment) / |control| for the
   first two, (treatment - control) / control for the drawdown. A control of exactly 0 gives no scale: then
   any strictly worse treatment counts as degraded (a loss against a flat control). A metric that cannot be
   computed (a Sharpe under two returns) is not judged.

**Advance** (split mode, running, not at the last step): the step's ``min_decisions`` covered decisions since it
began and its ``min_duration`` have both passed, and no guardrail fails; otherwise **wait**. At the last step
(share 1.0) the verdict is wait: promotion stays a person's call (``ffe experiments promote``). Shadow mode has
no steps: rollback or wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ffe.domain.experiment_stats import Comparison
from ffe.domain.experiments import Experiment, ExperimentStatus, Mode

HIGHER_IS_BETTER: dict[str, bool] = {"sharpe": True, "pnl": True, "max_drawdown": False}


class VerdictKind(StrEnum):
    ROLLBACK = "rollback"
    ADVANCE = "advance"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def degradation(metric: str, control: float, treatment: float) -> float:
    """How much worse the treatment is than the control, relative to the control's magnitude (negative:
    better). A zero control: ``inf`` when the treatment is strictly worse, else 0."""
    worse_by = (control - treatment) if HIGHER_IS_BETTER[metric] else (treatment - control)
    if control == 0:
        return float("inf") if worse_by > 0 else 0.0
    return worse_by / abs(control)


def evaluate(
    experiment: Experiment,
    stats_now: Comparison,
    step_stats: Comparison,
    cycles: Sequence[float | None],
    now: datetime,
    step_started_at: datetime,
) -> Verdict:
    """The verdict on a running experiment: rollback, advance (to the next canary step) or wait.

    ``stats_now``: the experiment's figures since it began; ``step_stats``: since the current step began;
    ``cycles``: the treatment's decision-path latency p95 per cycle, oldest first (None: no treatment-path
    decision in that cycle, which neither counts nor breaks a run).
    """
    rails = experiment.guardrails
    step = experiment.plan.steps[experiment.step]

    measured = [c for c in cycles if c is not None]
    recent = measured[-rails.sustained_cycles :]
    if len(recent) == rails.sustained_cycles and all(c > rails.latency_p95_ms for c in recent):
        return Verdict(
            VerdictKind.ROLLBACK,
            f"the treatment's decision-path latency p95 exceeded {rails.latency_p95_ms:g} ms"
            f" in each of the last {rails.sustained_cycles} cycles",
            {"guardrail": "latency", "threshold_ms": rails.latency_p95_ms, "cycles_p95_ms": recent},
        )

    violations = stats_now.treatment.violations_not_blocked
    if violations > 0:
        return Verdict(
            VerdictKind.ROLLBACK,
            f"{violations} risk violation(s) not blocked on decisions the treatment acted on",
            {"guardrail": "violation_not_blocked", "violations_not_blocked": violations},
        )

    minimum = max(step.min_decisions, 2)
    control, treatment = stats_now.control, stats_now.treatment
    sample = {"control_returns": control.returns, "treatment_returns": treatment.returns, "min_sample": minimum}
    performance: dict[str, Any] = {"metric": rails.metric, **sample}
    if control.returns >= minimum and treatment.returns >= minimum:
        c, t = control.metric(rails.metric), treatment.metric(rails.metric)
        if c is not None and t is not None:
            worse = degradation(rails.metric, c, t)
            performance |= {"control": c, "treatment": t, "degradation": _json_number(worse)}
            if worse > rails.max_degradation:
                return Verdict(
                    VerdictKind.ROLLBACK,
                    f"the treatment's {rails.metric} ({t:.4g}) is worse than the control's ({c:.4g})"
                    f" by more than {rails.max_degradation:.0%}",
                    {"guardrail": "performance", "max_degradation": rails.max_degradation, **performance},
                )

    if experiment.mode is Mode.SHADOW or experiment.status is not ExperimentStatus.RUNNING:
        return Verdict(VerdictKind.WAIT, "guardrails pass (shadow mode has no canary steps)", performance)
    if experiment.step >= len(experiment.plan.steps) - 1:
        return Verdict(
            VerdictKind.WAIT,
            "guardrails pass at the canary's last step; promotion is a person's call",
            performance,
        )
    elapsed = now - step_started_at
    progress = {
        "step": experiment.step,
        "share": step.share,
        "step_decisions": step_stats.decisions,
        "min_decisions": step.min_decisions,
        "step_elapsed_s": elapsed.total_seconds(),
        "min_duration_s": step.min_duration.total_seconds(),
    }
    if step_stats.decisions < step.min_decisions:
        return Verdict(
            VerdictKind.WAIT,
            f"step {experiment.step} has {step_stats.decisions} of its {step.min_decisions} decisions",
            progress | performance,
        )
    if elapsed < step.min_duration:
        return Verdict(
            VerdictKind.WAIT,
            f"step {experiment.step} has run {elapsed} of its {step.min_duration}",
            progress | performance,
        )
    following = experiment.plan.steps[experiment.step + 1]
    return Verdict(
        VerdictKind.ADVANCE,
        f"step {experiment.step} met its minimums and the guardrails pass: share {step.share:g} -> {following.share:g}",
        progress | performance | {"next_share": following.share},
    )


def _json_number(value: float) -> float | str:
    return value if value != float("inf") else "inf"
