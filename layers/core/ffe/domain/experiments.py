"""Experiments: a control (the champion) and a treatment model version, which assets each serves, and the lifecycle.

Pure: no I/O and no clock (``created_at`` is given). The store is ``ffe.adapters.experiments``.

**Modes.** ``shadow``: the treatment is computed and recorded beside every decision, and the control always
acts. ``split``: the treatment acts for the assets ``assign`` gives it at the current canary step's share.

**Assignment.** ``assign(experiment_id, asset, share)`` hashes (experiment id, asset) with BLAKE2b to a point
in [0, 1); the asset is the treatment's iff the point is below the share. The point depends on nothing but
those two strings, so an asset keeps its arm for the experiment's life (in every process), and raising the
share only moves assets from control to treatment.

**Lifecycle** (``TRANSITIONS``; ``check_transition`` applies it and the conditions below):

| from | to | when |
|---|---|---|
| draft | running | start (refused by the store while another running or paused experiment shares an asset) |
| draft | stopped | discard a draft that never ran |
| running | paused | the treatment stops acting: every asset is served by the control (``acting_arm``) |
| paused | running | resume at the same canary step |
| running, paused | stopped | end it, all traffic to the control; the treatment is not judged to have failed |
| running, paused | rolled_back | end it because the treatment failed (a guardrail, or by hand); all to the control |
| running | promoted | only in ``split`` mode at the plan's last step (share 1.0): the treatment served every asset |
| promoted | rolled_back | undo a promotion (putting the previous champion back is not built yet) |

Everything else is refused with ``InvalidTransitionError`` naming the reason; ``stopped`` and ``rolled_back``
are final. A shadow experiment is never promoted (its treatment never acted): a canary of a split experiment
comes first. Advancing a canary step is not a status change: ``next_step`` says whether it may happen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from ffe.domain.errors import InvalidInputError, InvalidTransitionError
from ffe.domain.universe import asset_class_of

Arm = Literal["control", "treatment"]
CONTROL: Arm = "control"
TREATMENT: Arm = "treatment"


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class Mode(StrEnum):
    SHADOW = "shadow"
    SPLIT = "split"


class Trigger(StrEnum):
    """What made a transition: a person (or the CLI/API on their behalf), a guardrail, or the canary plan."""

    MANUAL = "manual"
    GUARDRAIL = "guardrail"
    CANARY = "canary"


S = ExperimentStatus
TRANSITIONS: Mapping[ExperimentStatus, frozenset[ExperimentStatus]] = {
    S.DRAFT: frozenset({S.RUNNING, S.STOPPED}),
    S.RUNNING: frozenset({S.PAUSED, S.STOPPED, S.ROLLED_BACK, S.PROMOTED}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPED, S.ROLLED_BACK}),
    S.STOPPED: frozenset(),
    S.PROMOTED: frozenset({S.ROLLED_BACK}),
    S.ROLLED_BACK: frozenset(),
}
# Statuses in which an experiment holds its assets: no other experiment may start on them.
HOLDS_ASSETS: frozenset[ExperimentStatus] = frozenset({S.RUNNING, S.PAUSED})

GUARDRAIL_METRICS: tuple[str, ...] = ("sharpe", "pnl", "max_drawdown")


@dataclass(frozen=True, slots=True)
class CanaryStep:
    """One step of a canary: the treatment's share, held until both minimums are met."""

    share: float
    min_decisions: int = 50
    min_duration: timedelta = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """Ordered steps whose shares strictly increase, each in (0, 1], the last exactly 1.0."""

    steps: tuple[CanaryStep, ...] = (CanaryStep(0.05), CanaryStep(0.25), CanaryStep(1.0))

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidInputError("a canary plan needs at least one step")
        previous = 0.0
        for index, step in enumerate(self.steps):
            if not 0.0 < step.share <= 1.0:
                raise InvalidInputError(f"canary step {index}: share {step.share} is not in (0, 1]")
            if step.share <= previous:
                raise InvalidInputError(f"canary step {index}: share {step.share} does not exceed {previous}")
            if step.min_decisions < 0:
                raise InvalidInputError(f"canary step {index}: min_decisions {step.min_decisions} is negative")
            if step.min_duration < timedelta(0):
                raise InvalidInputError(f"canary step {index}: min_duration {step.min_duration} is negative")
            previous = step.share
        if self.steps[-1].share != 1.0:
            raise InvalidInputError(f"a canary plan ends at share 1.0, this one at {self.steps[-1].share}")


@dataclass(frozen=True, slots=True)
class Guardrails:
    """The thresholds an experiment's guardrails hold the treatment to (their evaluation is not built yet):
    decision-path latency p95 at most ``latency_p95_ms`` (a breach counts when sustained for
    ``sustained_cycles`` cycles), and ``metric`` no worse than the control's by more than ``max_degradation``
    (relative). Defaults from issue 15: 200 ms, 30 %."""

    latency_p95_ms: float = 200.0
    max_degradation: float = 0.30
    metric: str = "sharpe"
    sustained_cycles: int = 3

    def __post_init__(self) -> None:
        if self.latency_p95_ms <= 0:
            raise InvalidInputError(f"guardrail latency_p95_ms must be positive, got {self.latency_p95_ms}")
        if not 0.0 < self.max_degradation <= 1.0:
            raise InvalidInputError(f"guardrail max_degradation must be in (0, 1], got {self.max_degradation}")
        if self.metric not in GUARDRAIL_METRICS:
            raise InvalidInputError(f"guardrail metric {self.metric!r} is not one of {', '.join(GUARDRAIL_METRICS)}")
        if self.sustained_cycles < 1:
            raise InvalidInputError(f"guardrail sustained_cycles must be at least 1, got {self.sustained_cycles}")


@dataclass(frozen=True, slots=True)
class Experiment:
    """``assets`` None: the stage's whole universe. ``step`` indexes ``plan.steps``."""

    id: str
    control_version: str
    treatment_version: str
    mode: Mode
    created_at: datetime
    assets: frozenset[str] | None = None
    plan: CanaryPlan = field(default_factory=CanaryPlan)
    step: int = 0
    guardrails: Guardrails = field(default_factory=Guardrails)
    status: ExperimentStatus = ExperimentStatus.DRAFT

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidInputError("an experiment needs an id")
        if not self.control_version or not self.treatment_version:
            raise InvalidInputError("an experiment needs a control and a treatment version")
        if self.control_version == self.treatment_version:
            raise InvalidInputError(f"control and treatment are the same version {self.control_version!r}")
        if self.created_at.tzinfo is None:
            raise InvalidInputError("created_at must be timezone-aware")
        if self.assets is not None:
            if not self.assets:
                raise InvalidInputError("an experiment's assets are None (the universe) or at least one asset")
            for asset in self.assets:
                asset_class_of(asset)
        if not 0 <= self.step < len(self.plan.steps):
            raise InvalidInputError(f"step {self.step} is outside the plan's {len(self.plan.steps)} steps")

    @property
    def share(self) -> float:
        """The treatment's share of assets now: the current step's in split mode, 0 in shadow mode."""
        return self.plan.steps[self.step].share if self.mode is Mode.SPLIT else 0.0

    def acting_arm(self, asset: str) -> Arm:
        """The arm whose decision is acted on for ``asset``: the treatment only while running in split mode
        and assigned to it; the control otherwise (shadow, paused, ended, or the asset not in scope)."""
        if self.status is not ExperimentStatus.RUNNING or not self.covers(asset):
            return CONTROL
        return assign(self.id, asset, self.share)

    def covers(self, asset: str) -> bool:
        return self.assets is None or asset in self.assets


@dataclass(frozen=True, slots=True)
class RunningExperiment:
    """A running experiment as a cycle sees it: resolved once, at "Open the cycle", with the champion."""

    id: str
    mode: Mode
    control_version: str
    treatment_version: str
    share: float  # the treatment's share now (0 in shadow mode)
    assets: frozenset[str] | None = None  # None: the universe

    @classmethod
    def of(cls, experiment: Experiment) -> RunningExperiment:
        return cls(
            experiment.id,
            experiment.mode,
            experiment.control_version,
            experiment.treatment_version,
            experiment.share,
            experiment.assets,
        )

    def covers(self, asset: str) -> bool:
        return self.assets is None or asset in self.assets


@dataclass(frozen=True, slots=True)
class Route:
    """Which model versions decide one asset in one cycle: the acting one, and the other arm's (computed and
    recorded beside the decision, never acted on) while an experiment covers the asset."""

    acting_version: str
    other_version: str | None = None
    experiment_id: str | None = None
    acting_arm: Arm | None = None
    mode: Mode | None = None

    @property
    def other_arm(self) -> Arm | None:
        if self.acting_arm is None:
            return None
        return TREATMENT if self.acting_arm == CONTROL else CONTROL

    @property
    def versions(self) -> tuple[str, ...]:
        """The acting version first, then the other arm's when there is one."""
        return (self.acting_version,) if self.other_version is None else (self.acting_version, self.other_version)


def route(asset: str, champion: str, experiments: Iterable[RunningExperiment]) -> Route:
    """The versions that decide ``asset``: the champion alone, or the first running experiment covering it
    (running experiments never share an asset: the store refuses such a start). Shadow: the control acts and the
    treatment is computed beside it. Split: the arm ``assign`` gives the asset acts, the other is computed."""
    for experiment in experiments:
        if not experiment.covers(asset):
            continue
        arm = CONTROL if experiment.mode is Mode.SHADOW else assign(experiment.id, asset, experiment.share)
        acting, other = (
            (experiment.control_version, experiment.treatment_version)
            if arm == CONTROL
            else (experiment.treatment_version, experiment.control_version)
        )
        return Route(acting, other, experiment.id, arm, experiment.mode)
    return Route(champion)


def _point(experiment_id: str, asset: str) -> float:
    digest = hashlib.blake2b(f"{experiment_id}\x1f{asset}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign(experiment_id: str, asset: str, share: float) -> Arm:
    """The asset's arm at ``share``: the treatment iff its hashed point in [0, 1) is below the share."""
    return TREATMENT if _point(experiment_id, asset) < share else CONTROL


def arms_overlap(a: Experiment, b: Experiment) -> bool:
    """Whether the two experiments compete for an asset (an experiment on the universe overlaps every other)."""
    return a.assets is None or b.assets is None or not a.assets.isdisjoint(b.assets)


def first_conflict(experiment: Experiment, others: Iterable[Experiment]) -> Experiment | None:
    """The first other experiment that holds (running or paused) an asset ``experiment`` would serve."""
    for other in others:
        if other.id != experiment.id and other.status in HOLDS_ASSETS and arms_overlap(experiment, other):
            return other
    return None


def check_transition(experiment: Experiment, to: ExperimentStatus) -> ExperimentStatus:
    """``to`` when the lifecycle allows ``experiment`` to move there now; raises otherwise.

    Raises:
        InvalidTransitionError: the table does not allow it, or promotion before a split canary's last step.
    """
    now = experiment.status
    if to not in TRANSITIONS[now]:
        final = " (it is final)" if not TRANSITIONS[now] else ""
        raise InvalidTransitionError(
            f"an experiment cannot go from {now.value} to {to.value}{final}",
            experiment=experiment.id,
            status=now.value,
            to=to.value,
        )
    if to is ExperimentStatus.PROMOTED:
        if experiment.mode is not Mode.SPLIT:
            raise InvalidTransitionError(
                "a shadow experiment's treatment never acted; promote after a split canary reaches share 1.0",
                experiment=experiment.id,
            )
        if experiment.step != len(experiment.plan.steps) - 1:
            raise InvalidTransitionError(
                f"promotion waits for the canary's last step (share 1.0); it is at step {experiment.step}"
                f" (share {experiment.share})",
                experiment=experiment.id,
            )
    return to


def next_step(experiment: Experiment) -> int:
    """The canary step after the current one, when the experiment may advance to it.

    Raises:
        InvalidTransitionError: not running, in shadow mode, or already at the last step.
    """
    if experiment.status is not ExperimentStatus.RUNNING:
        raise InvalidTransitionError(
            f"only a running experiment advances its canary; this one is {experiment.status.value}",
            experiment=experiment.id,
        )
    if experiment.mode is not Mode.SPLIT:
        raise InvalidTransitionError("a shadow experiment has no canary steps to advance", experiment=experiment.id)
    if experiment.step >= len(experiment.plan.steps) - 1:
        raise InvalidTransitionError("the canary is at its last step; promote instead", experiment=experiment.id)
    return experiment.step + 1


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change of an experiment: its status (or, running to running, its canary step), who or what
    made it, why, and the figures behind it."""

    experiment_id: str
    from_status: ExperimentStatus
    to_status: ExperimentStatus
    from_step: int
    to_step: int
    at: datetime
    actor: str
    trigger: Trigger
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Champion:
    """The stage's champion: the version every asset no experiment covers is decided with. ``set_at`` None: no
    one has set one, and it is the bundle shipped in the layer."""

    version: str
    previous_version: str | None = None
    set_at: datetime | None = None
    actor: str = ""
    reason: str = ""
    experiment_id: str | None = None


# --- JSON shapes (the store's jsonb columns, the API's bodies) ---------------------------------------------------


def plan_to_json(plan: CanaryPlan) -> list[dict[str, Any]]:
    return [
        {"share": s.share, "min_decisions": s.min_decisions, "min_duration_s": s.min_duration.total_seconds()}
        for s in plan.steps
    ]


def plan_from_json(steps: list[dict[str, Any]]) -> CanaryPlan:
    return CanaryPlan(
        tuple(
            CanaryStep(float(s["share"]), int(s["min_decisions"]), timedelta(seconds=float(s["min_duration_s"])))
            for s in steps
        )
    )


def guardrails_to_json(guardrails: Guardrails) -> dict[str, Any]:
    return {
        "latency_p95_ms": guardrails.latency_p95_ms,
        "max_degradation": guardrails.max_degradation,
        "metric": guardrails.metric,
        "sustained_cycles": guardrails.sustained_cycles,
    }


def guardrails_from_json(data: dict[str, Any]) -> Guardrails:
    return Guardrails(
        float(data["latency_p95_ms"]),
        float(data["max_degradation"]),
        str(data["metric"]),
        int(data["sustained_cycles"]),
    )
