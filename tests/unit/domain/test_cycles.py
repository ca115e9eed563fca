"""What a starting cycle makes of one still marked RUNNING: skip while its execution runs, else close it."""

import pytest

from ffe.domain.cycles import CYCLE_TIMEOUT_SECONDS, Ended, Running, judge_running_cycle


def test_a_running_execution_makes_the_new_cycle_wait_its_turn() -> None:
    assert isinstance(judge_running_cycle("RUNNING", 12.0), Running)
    # Step Functions is the authority: even past the usual timeout, a running execution is running
    assert isinstance(judge_running_cycle("RUNNING", CYCLE_TIMEOUT_SECONDS + 5), Running)


def test_an_execution_step_functions_does_not_know_was_interrupted() -> None:
    verdict = judge_running_cycle(None, 30.0)
    assert isinstance(verdict, Ended) and verdict.status == "ABORTED" and "no longer exists" in verdict.reason


@pytest.mark.parametrize("status", ["TIMED_OUT", "ABORTED", "FAILED", "SUCCEEDED"])
def test_an_execution_that_ended_without_closing_its_cycle_closes_it_with_its_outcome(status: str) -> None:
    verdict = judge_running_cycle(status, 100.0)
    assert verdict == Ended(status, f"its execution ended {status} without closing the cycle")


def test_when_step_functions_cannot_be_asked_the_cycle_age_decides_at_the_timeout() -> None:
    assert isinstance(judge_running_cycle(None, CYCLE_TIMEOUT_SECONDS - 1, known=False), Running)
    late = judge_running_cycle(None, CYCLE_TIMEOUT_SECONDS, known=False)
    assert isinstance(late, Ended) and late.status == "TIMED_OUT"
