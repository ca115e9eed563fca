"""An experiment's comparison figures per arm, from the rows of the ``experiment_arm_decisions`` view.

Pure: the adapter (``ffe.adapters.experiment_results``) reads the rows and the paper fills, this module does
the maths. Both arms are judged on the SAME decisions (assets and bars): every decision an experiment covered
records both arms' model outputs, whichever acted.

Definitions (docs/experiments.md says the same):

- ``next_return``: the next decision's bar close (same experiment, asset and timeframe) over this one's, less 1.
- signal return of an arm: its action's direction (BUY +1, SELL -1, HOLD 0) times ``next_return``; computed
  for the arm that did not act too. ``signal_pnl`` sums them; ``sharpe`` is their mean over their standard
  deviation (ddof 1), annualised by the bars per year of each decision's asset class and timeframe (their
  mean), None under two returns; ``max_drawdown`` is the largest fall, as a positive fraction of the running
  peak, of the equity curve 1 + cumulative signal P&L in decision order.
- ``turnover``: per asset, over consecutive decisions, the fraction where the arm's action changed.
- latencies: ``latency_p50_ms``/``latency_p95_ms`` are the arm's inference latency (its ``ArmOutput``);
  ``path_latency_p95_ms`` is the decision-path latency p95 (fetch to record, less the LLM) of the decisions the
  arm acted on, or, for the treatment in shadow mode, of every covered decision (the shadow runs in that path).
- ``paper_pnl``: mark-to-market P&L of the arm's paper fills (sells' proceeds less buys' cost less fees, plus
  the net quantity bought valued at the asset's latest close in the window, else its latest fill price); None
  in shadow mode, where the treatment never trades.
- ``agreement_rate``: the fraction of decisions, among those where both arms decided, with the same action.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ffe.domain.errors import InvalidInputError
from ffe.domain.experiments import CONTROL, TREATMENT, Arm, Mode
from ffe.domain.models import Timeframe
from ffe.domain.performance import max_drawdown, periods_per_year
from ffe.domain.universe import asset_class_of

ACTIONS: tuple[str, ...] = ("BUY", "SELL", "HOLD")
_DIRECTION = {"BUY": 1.0, "SELL": -1.0, "HOLD": 0.0}


@dataclass(frozen=True, slots=True)
class ArmDecision:
    """One row of ``experiment_arm_decisions``: one arm's output for one covered decision."""

    decision_id: int
    asset: str
    timeframe: str
    as_of: datetime
    bar_time: datetime | None
    arm: Arm
    acted: bool
    action: str | None
    confidence: float | None = None
    latency_ms: float | None = None
    decision_action: str = "HOLD"
    decision_reason: str = ""
    decision_latency_ms: float | None = None
    bar_close: float | None = None
    next_return: float | None = None
    risk_blocks: int = 0
    violations_not_blocked: int = 0

    @property
    def signal_return(self) -> float | None:
        if self.action is None or self.next_return is None:
            return None
        return _DIRECTION[self.action] * self.next_return


@dataclass(frozen=True, slots=True)
class PaperFill:
    """A paper fill of an order placed for a covered decision, with the arm that acted."""

    arm: Arm
    asset: str
    side: str  # BUY or SELL
    quantity: float
    price: float
    fee: float = 0.0


@dataclass(frozen=True, slots=True)
class ArmStats:
    decisions: int = 0
    acted: int = 0
    actions: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    hold_reasons: Mapping[str, int] = field(default_factory=dict)
    confidence_mean: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    path_latency_p95_ms: float | None = None
    signal_pnl: float = 0.0
    sharpe: float | None = None
    max_drawdown: float = 0.0
    turnover: float | None = None
    paper_pnl: float | None = None
    risk_blocks: int = 0
    violations_not_blocked: int = 0
    returns: int = 0  # how many signal returns the performance figures rest on

    def metric(self, name: str) -> float | None:
        """A guardrail metric by its name (sharpe | pnl | max_drawdown)."""
        if name == "sharpe":
            return self.sharpe
        if name == "pnl":
            return self.signal_pnl
        if name == "max_drawdown":
            return self.max_drawdown
        raise InvalidInputError(f"unknown guardrail metric {name!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "acted": self.acted,
            "actions": dict(self.actions),
            "hold_reasons": dict(self.hold_reasons),
            "confidence_mean": _finite(self.confidence_mean),
            "latency_p50_ms": _finite(self.latency_p50_ms),
            "latency_p95_ms": _finite(self.latency_p95_ms),
            "path_latency_p95_ms": _finite(self.path_latency_p95_ms),
            "signal_pnl": _finite(self.signal_pnl),
            "sharpe": _finite(self.sharpe),
            "max_drawdown": _finite(self.max_drawdown),
            "turnover": _finite(self.turnover),
            "paper_pnl": _finite(self.paper_pnl),
            "risk_blocks": self.risk_blocks,
            "violations_not_blocked": self.violations_not_blocked,
            "returns": self.returns,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    experiment_id: str
    since: datetime | None
    until: datetime | None
    decisions: int
    agreement_rate: float | None
    confidence_delta: float | None
    latency_p50_delta_ms: float | None
    latency_p95_delta_ms: float | None
    control: ArmStats
    treatment: ArmStats

    def arm(self, arm: Arm) -> ArmStats:
        return self.control if arm == CONTROL else self.treatment

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: datetimes as ISO 8601, non-finite figures as null."""
        return {
            "experiment_id": self.experiment_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "decisions": self.decisions,
            "agreement_rate": _finite(self.agreement_rate),
            "confidence_delta": _finite(self.confidence_delta),
            "latency_p50_delta_ms": _finite(self.latency_p50_delta_ms),
            "latency_p95_delta_ms": _finite(self.latency_p95_delta_ms),
            "control": self.control.to_json(),
            "treatment": self.treatment.to_json(),
        }


def compare(
    experiment_id: str,
    mode: Mode,
    rows: Iterable[ArmDecision],
    fills: Iterable[PaperFill] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> Comparison:
    """The comparison of both arms over ``rows`` (one experiment's, already limited to the window)."""
    by_arm: dict[Arm, list[ArmDecision]] = {CONTROL: [], TREATMENT: []}
    for row in rows:
        by_arm[row.arm].append(row)
    for arm_rows in by_arm.values():
        arm_rows.sort(key=_order)
    fills_by_arm: dict[Arm, list[PaperFill]] = {CONTROL: [], TREATMENT: []}
    for fill in fills:
        fills_by_arm[fill.arm].append(fill)
    marks = _latest_closes([*by_arm[CONTROL], *by_arm[TREATMENT]])
    control = arm_stats(by_arm[CONTROL], CONTROL, mode, fills_by_arm[CONTROL], marks)
    treatment = arm_stats(by_arm[TREATMENT], TREATMENT, mode, fills_by_arm[TREATMENT], marks)
    return Comparison(
        experiment_id=experiment_id,
        since=since,
        until=until,
        decisions=len({r.decision_id for arm_rows in by_arm.values() for r in arm_rows}),
        agreement_rate=agreement_rate(by_arm[CONTROL], by_arm[TREATMENT]),
        confidence_delta=_delta(treatment.confidence_mean, control.confidence_mean),
        latency_p50_delta_ms=_delta(treatment.latency_p50_ms, control.latency_p50_ms),
        latency_p95_delta_ms=_delta(treatment.latency_p95_ms, control.latency_p95_ms),
        control=control,
        treatment=treatment,
    )


def arm_stats(
    rows: Sequence[ArmDecision],
    arm: Arm,
    mode: Mode,
    fills: Sequence[PaperFill] = (),
    marks: Mapping[str, float] | None = None,
) -> ArmStats:
    """One arm's figures; ``rows`` in decision order (bar time, as_of, id) and all of that arm."""
    acted = [r for r in rows if r.acted]
    actions = Counter(dict.fromkeys(ACTIONS, 0))
    actions.update(r.action for r in rows if r.action is not None)
    hold_reasons = Counter(code for r in rows if (code := hold_code(r)) is not None)
    confidences = [r.confidence for r in rows if r.confidence is not None]
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    path_rows = rows if (arm == TREATMENT and mode is Mode.SHADOW) else acted
    path = [r.decision_latency_ms for r in path_rows if r.decision_latency_ms is not None]
    returns = [(r, s) for r in rows if (s := r.signal_return) is not None]
    values = np.array([s for _, s in returns], dtype=np.float64)
    sharpe: float | None = None
    if values.size >= 2:
        sd = float(np.std(values, ddof=1))
        per_year = float(np.mean([_periods_per_year(r) for r, _ in returns]))
        sharpe = float(np.mean(values) / sd * math.sqrt(per_year)) if sd > 0 else 0.0
    equity = np.concatenate(([1.0], 1.0 + np.cumsum(values)))
    return ArmStats(
        decisions=len(rows),
        acted=len(acted),
        actions=dict(actions),
        hold_reasons=dict(hold_reasons),
        confidence_mean=float(np.mean(confidences)) if confidences else None,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        path_latency_p95_ms=percentile(path, 95),
        signal_pnl=float(values.sum()),
        sharpe=sharpe,
        max_drawdown=max_drawdown(equity),
        turnover=turnover(rows),
        paper_pnl=None if mode is Mode.SHADOW else paper_pnl(fills, marks or {}),
        risk_blocks=sum(r.risk_blocks for r in acted),
        violations_not_blocked=sum(r.violations_not_blocked for r in acted),
        returns=int(values.size),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (numpy's linear interpolation), None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def agreement_rate(control: Iterable[ArmDecision], treatment: Iterable[ArmDecision]) -> float | None:
    """Same action over the decisions where both arms decided (None when there are none)."""
    theirs = {r.decision_id: r.action for r in treatment if r.action is not None}
    both = [(r.action, theirs[r.decision_id]) for r in control if r.action is not None and r.decision_id in theirs]
    return sum(a == b for a, b in both) / len(both) if both else None


def turnover(rows: Sequence[ArmDecision]) -> float | None:
    """Per asset (and timeframe), the fraction of consecutive decisions where the action changed."""
    last: dict[tuple[str, str], str] = {}
    pairs = changes = 0
    for row in rows:
        if row.action is None:
            continue
        key = (row.asset, row.timeframe)
        if key in last:
            pairs += 1
            changes += last[key] != row.action
        last[key] = row.action
    return changes / pairs if pairs else None


def paper_pnl(fills: Iterable[PaperFill], marks: Mapping[str, float]) -> float:
    """Sells' proceeds - buys' cost - fees + the net quantity bought at the asset's latest close (its latest fill
    price when no close is known)."""
    cash = 0.0
    held: defaultdict[str, float] = defaultdict(float)
    last_price: dict[str, float] = {}
    for fill in fills:
        sign = 1.0 if fill.side == "BUY" else -1.0
        cash -= sign * fill.quantity * fill.price + fill.fee
        held[fill.asset] += sign * fill.quantity
        last_price[fill.asset] = fill.price
    for asset, quantity in held.items():
        cash += quantity * marks.get(asset, last_price[asset])
    return cash


def _latest_closes(rows: Sequence[ArmDecision]) -> dict[str, float]:
    marks: dict[str, float] = {}
    for row in sorted(rows, key=_order):
        if row.bar_close is not None:
            marks[row.asset] = row.bar_close
    return marks


def _order(row: ArmDecision) -> tuple[datetime, datetime, int]:
    return (row.bar_time or row.as_of, row.as_of, row.decision_id)


def _periods_per_year(row: ArmDecision) -> float:
    return periods_per_year(asset_class_of(row.asset), Timeframe(row.timeframe))


def _delta(treatment: float | None, control: float | None) -> float | None:
    return None if treatment is None or control is None else treatment - control


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def hold_code(row: ArmDecision) -> str | None:
    """Why the arm held on this decision, as a code (``ffe.decision_metrics.hold_reason``'s words): the acting
    arm by its recorded decision (``risk_blocked``, ``inference_unavailable``, else ``no_signal``); the other
    arm by its own output (``no_signal``, or ``unavailable`` when it could not decide). None: it did not hold."""
    if row.acted:
        if row.decision_action != "HOLD":
            return None
        reason = row.decision_reason or ""
        if row.risk_blocks:
            return "risk_blocked"
        if reason.startswith("inference_unavailable"):
            return "inference_unavailable"
        return "no_signal"
    if row.action is None:
        return "unavailable"
    return "no_signal" if row.action == "HOLD" else None
