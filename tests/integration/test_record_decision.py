"""RecordDecision against a real PostgreSQL: idempotent writes, failures, outages."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import DataSource, DecisionRecord, FailureRecord
from ffe.domain.errors import TransientError
from ffe.domain.models import Action, Timeframe
from functions.record_decision import handler as record_decision

SOURCE = DataSource(provider="replay", dataset="test", synthetic=False, simulated_clock=True)


def decision(cycle_id: str, **change: object) -> dict[str, Any]:
    rec = DecisionRecord(
        cycle_id=cycle_id,
        as_of=datetime(2019, 6, 15, 12, 1, tzinfo=UTC),
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        bar_time=datetime(2019, 6, 15, 11, tzinfo=UTC),
        action=Action.BUY,
        confidence=0.4,
        stale=False,
        reason="test",
        data_age_seconds=60.0,
        staleness_threshold_seconds=7200,
        model="naive_router",
        model_version="1",
        signals={"trend_following": 0.5},
        source=SOURCE,
        input_sha256="0" * 64,
    )
    return {**rec.model_dump(mode="json"), **change}


def count(db: psycopg.Connection, table: str, cycle_id: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table} WHERE cycle_id = %s", (cycle_id,)).fetchone()[0]  # type: ignore[index]


def test_same_decision_twice_gives_one_row(
    database_url: str, db: psycopg.Connection, cycle_id: str, lambda_context: Any
) -> None:
    first = record_decision.lambda_handler(decision(cycle_id), lambda_context)
    second = record_decision.lambda_handler(decision(cycle_id), lambda_context)
    assert first["created"] is True and second["created"] is False
    assert first["id"] == second["id"]
    assert count(db, "decisions", cycle_id) == 1


def test_stale_hold_without_bars_is_still_idempotent(
    database_url: str, db: psycopg.Connection, cycle_id: str, lambda_context: Any
) -> None:
    hold = decision(
        cycle_id,
        bar_time=None,
        action="HOLD",
        confidence=1.0,
        stale=True,
        data_age_seconds=None,
        model="staleness_gate",
        signals={},
    )
    record_decision.lambda_handler(hold, lambda_context)
    record_decision.lambda_handler(hold, lambda_context)
    assert count(db, "decisions", cycle_id) == 1


def test_next_bar_is_a_new_decision(
    database_url: str, db: psycopg.Connection, cycle_id: str, lambda_context: Any
) -> None:
    record_decision.lambda_handler(decision(cycle_id), lambda_context)
    record_decision.lambda_handler(decision(cycle_id, bar_time="2019-06-15T12:00:00Z"), lambda_context)
    assert count(db, "decisions", cycle_id) == 2


def test_failure_is_recorded_once_with_its_message(
    database_url: str, db: psycopg.Connection, cycle_id: str, lambda_context: Any
) -> None:
    cause = '{"errorType": "InvalidInputError", "errorMessage": "unknown asset \'XAUUSD\'", "stackTrace": []}'
    failure = {"kind": "failure", "cycle_id": cycle_id, "asset": "XAUUSD", "error": "InvalidInputError", "cause": cause}
    out = record_decision.lambda_handler(failure, lambda_context)
    record_decision.lambda_handler(failure, lambda_context)
    assert out["kind"] == "failure" and out["error"] == "InvalidInputError"
    row = db.execute("SELECT error_class, message FROM failures WHERE cycle_id = %s", (cycle_id,)).fetchall()
    assert row == [("InvalidInputError", "unknown asset 'XAUUSD'")]


def test_cycle_failure_names_the_bad_field(
    database_url: str, db: psycopg.Connection, cycle_id: str, lambda_context: Any
) -> None:
    raw = {"cycle_id": cycle_id, "as_of": "2019-06-15T12:01:00Z", "timeframe": "2h"}
    event = {"kind": "failure", "cycle_input": raw, "error": "States.Runtime", "cause": "a runtime error"}
    record_decision.lambda_handler(event, lambda_context)
    row = db.execute("SELECT error_class, message, asset FROM failures WHERE cycle_id = %s", (cycle_id,)).fetchone()
    assert row is not None and row[0] == "InvalidInputError" and "timeframe: Input should be" in row[1]
    assert row[2] is None


def test_unreachable_database_is_transient(tmp_path: Path) -> None:
    store = PostgresDecisionStore(f"postgresql://postgres@/ffe?host={tmp_path}&port=1&connect_timeout=1")
    rec = FailureRecord(cycle_id="c", error="X")
    with pytest.raises(TransientError, match="cannot reach the decision store"):
        store.record_failure(rec, "m")


def test_database_outage_mid_life_reconnects(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    store = PostgresDecisionStore(postgres)
    store.record_failure(FailureRecord(cycle_id=cycle_id, asset="A", error="X"), "first")
    # Given the server drops our connection (as a failover or RDS Proxy recycle would)
    conn = store.database.current
    assert conn is not None
    pid = conn.info.backend_pid
    db.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # returns once the backend is gone
    # When the next write runs, Then it reconnects once and succeeds (ffe.adapters.database)
    assert store.record_failure(FailureRecord(cycle_id=cycle_id, asset="B", error="X"), "second").created
    assert store.database.current is not None and store.database.current.info.backend_pid != pid
    assert count(db, "failures", cycle_id) == 2
    store.close()
