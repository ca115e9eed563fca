"""One decision cycle per stage and timeframe at a time: what a starting cycle makes of one still marked RUNNING.

Step Functions knows whether that cycle's execution still runs; when it cannot be asked, the cycle's age
against the state machine's own timeout decides. Pure: the caller reads the execution's status and the age.
"""

from __future__ import annotations

from dataclasses import dataclass

# The DecisionCycle state machine's TimeoutSeconds (decision_cycle.asl.json; a test checks they agree): no
# execution runs longer, so a cycle RUNNING for longer than this was interrupted.
CYCLE_TIMEOUT_SECONDS = 900

_ENDED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass(frozen=True, slots=True)
class Running:
    """The earlier cycle still runs: the new one is skipped."""

    why: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The earlier cycle's execution is over without having closed it: close it with this status and reason."""

    status: str
    reason: str


def judge_running_cycle(execution_status: str | None, age_seconds: float, known: bool = True) -> Running | Ended:
    """``execution_status``: the execution's status from Step Functions (RUNNING, SUCCEEDED, FAILED, TIMED_OUT,
    ABORTED), None when Step Functions has no such execution; ``known`` False when it could not be asked."""
    if not known:
        if age_seconds < CYCLE_TIMEOUT_SECONDS:
            return Running(f"running for {age_seconds:.0f} s (its execution's status could not be read)")
        return Ended(
            "TIMED_OUT",
            f"still marked running {age_seconds:.0f} s after it started, longer than any "
            f"execution may run ({CYCLE_TIMEOUT_SECONDS} s)",
        )
    if execution_status == "RUNNING":
        return Running(f"its execution has been running for {age_seconds:.0f} s")
    if execution_status is None:
        return Ended("ABORTED", "its execution no longer exists (the run was interrupted before it closed the cycle)")
    if execution_status in _ENDED:
        return Ended(execution_status, f"its execution ended {execution_status} without closing the cycle")
    return Ended("ABORTED", f"its execution is in an unknown state {execution_status!r}")
