"""One cycle per stage and timeframe at a time, through the real database: a second one is recorded SKIPPED
with its reason, an interrupted one is closed (ABORTED / TIMED_OUT) by the next, two racing opens never both
run, and what an ended cycle reserved stops holding headroom."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import CycleHeader
from ffe.domain.errors import TransientError


def header(cycle_id: str, timeframe: str = "1h") -> CycleHeader:
    return CycleHeader.model_validate(
        {"cycle_id": cycle_id, "assets": ["BTCUSD"], "timeframe": timeframe, "as_of": "2019-06-15T12:01:00Z"}
    )


@pytest.fixture
def store(postgres: str) -> Any:
    """A stage of its own, so no other test's cycles are in the way."""
    opened = PostgresDecisionStore(postgres, stage=f"lock-{uuid.uuid4().hex[:8]}")
    yield opened
    opened.close()


def cycle_row(db: psycopg.Connection, cycle_id: str) -> tuple[Any, ...]:
    row = db.execute("SELECT status, reason, finished_at IS NOT NULL FROM cycles WHERE id = %s", (cycle_id,))
    return row.fetchone()  # type: ignore[return-value]


def test_a_second_cycle_while_the_first_runs_is_recorded_skipped_with_its_reason(store, db) -> None:
    first, second = f"first-{uuid.uuid4()}", f"second-{uuid.uuid4()}"
    assert store.open_cycle(header(first), "arn:first", lambda arn: "RUNNING").status == "RUNNING"
    opened = store.open_cycle(header(second), "arn:second", lambda arn: "RUNNING")
    assert (opened.created, opened.status) == (True, "SKIPPED")
    assert f"cycle {first} of stage {store._stage}, timeframe 1h" in opened.reason
    assert "is still running (its execution has been running for" in opened.reason and "arn:first" in opened.reason
    status, reason, finished = cycle_row(db, second)
    assert (status, reason, finished) == ("SKIPPED", opened.reason, True)
    # And a retried Open of the skipped cycle stays skipped; another timeframe is not in the way
    assert store.open_cycle(header(second), "arn:second", lambda arn: "RUNNING").status == "SKIPPED"
    assert store.open_cycle(header(f"daily-{uuid.uuid4()}", "1d"), "arn:d", lambda arn: "RUNNING").status == "RUNNING"


def test_an_interrupted_cycle_is_closed_aborted_by_the_next_with_its_reason(store, db) -> None:
    # Given a cycle left RUNNING by a run that was interrupted (Ctrl-C): Step Functions has no such execution
    interrupted, later = f"ctrl-c-{uuid.uuid4()}", f"later-{uuid.uuid4()}"
    store.open_cycle(header(interrupted), "arn:gone", lambda arn: "RUNNING")
    # When the next cycle of that stage and timeframe starts
    opened = store.open_cycle(header(later), "arn:later", lambda arn: None if arn == "arn:gone" else "RUNNING")
    # Then it runs, and the interrupted one is closed as ABORTED, saying why
    assert opened.status == "RUNNING" and opened.closed == ((interrupted, "ABORTED"),)
    status, reason, finished = cycle_row(db, interrupted)
    assert status == "ABORTED" and finished
    assert reason == (
        f"closed when cycle {later} started: its execution no longer exists (the run was "
        "interrupted before it closed the cycle)"
    )


def test_a_cycle_whose_execution_timed_out_is_closed_timed_out(store, db) -> None:
    timed_out, later = f"slow-{uuid.uuid4()}", f"later-{uuid.uuid4()}"
    store.open_cycle(header(timed_out), "arn:slow", lambda arn: "RUNNING")
    store.open_cycle(header(later), "arn:later", lambda arn: "TIMED_OUT" if arn == "arn:slow" else "RUNNING")
    assert cycle_row(db, timed_out)[:2] == (
        "TIMED_OUT",
        f"closed when cycle {later} started: its execution ended TIMED_OUT without closing the cycle",
    )


def test_without_step_functions_a_cycle_older_than_the_timeout_is_closed_timed_out(store, db) -> None:
    def unreachable(arn: str) -> str | None:
        raise TransientError("states.us-east-1.amazonaws.com timed out")

    recent, later = f"recent-{uuid.uuid4()}", f"later-{uuid.uuid4()}"
    store.open_cycle(header(recent), "arn:recent", unreachable)
    # a cycle that started within the timeout may still be running: the next one is skipped
    assert store.open_cycle(header(f"x-{uuid.uuid4()}"), "arn:x", unreachable).status == "SKIPPED"
    # once it is older than any execution may run, it is closed as TIMED_OUT and the next one runs
    db.execute("UPDATE cycles SET started_at = now() - interval '16 minutes' WHERE id = %s", (recent,))
    opened = store.open_cycle(header(later), "arn:later", unreachable)
    assert opened.status == "RUNNING" and opened.closed == ((recent, "TIMED_OUT"),)


def test_two_opens_racing_never_both_run(postgres: str, db) -> None:
    stage = f"race-{uuid.uuid4().hex[:8]}"
    both = threading.Barrier(2)

    def open_in_its_own_container(cycle_id: str) -> str:
        store = PostgresDecisionStore(postgres, stage=stage)
        try:
            both.wait(timeout=10)
            return store.open_cycle(header(cycle_id), f"arn:{cycle_id}", lambda arn: "RUNNING").status
        finally:
            store.close()

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(open_in_its_own_container, [f"a-{uuid.uuid4()}", f"b-{uuid.uuid4()}"]))
    assert statuses == ["RUNNING", "SKIPPED"]
    running = db.execute("SELECT count(*) FROM cycles WHERE stage = %s AND status = 'RUNNING'", (stage,)).fetchone()
    assert running == (1,)


def test_what_an_aborted_cycle_reserved_stops_holding_headroom(store, db, reservations) -> None:
    from ffe.domain.portfolio import OrderSide
    from ffe.domain.ports import Reservation

    interrupted = f"ctrl-c-{uuid.uuid4()}"
    store.open_cycle(header(interrupted), "arn:gone", lambda arn: "RUNNING")
    account = f"paper-{uuid.uuid4()}"
    with reservations.account(account) as book:
        book.reserve(
            Reservation(
                f"ffe-{uuid.uuid4().hex[:28]}",
                "BTCUSD",
                None,
                OrderSide.BUY,
                Decimal("0.1"),
                Decimal("50000"),
                interrupted,
                {"broker": "paper"},
            )
        )
    store.open_cycle(header(f"later-{uuid.uuid4()}"), "arn:later", lambda arn: None)
    with reservations.account(account) as book:
        assert book.reserved() == []
    row = db.execute("SELECT status, note FROM order_reservations WHERE cycle_id = %s", (interrupted,)).fetchone()
    assert row == ("RELEASED", "its cycle ended before it was placed")
