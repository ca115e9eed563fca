"""Schema migrations on a real PostgreSQL: from empty, re-run, from 0001 with data; partitions; retention."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ffe.store.migrate import migrate, migration_files
from tests.database import own_database


@pytest.fixture
def empty_db(postgres: str) -> Iterator[psycopg.Connection]:
    """A fresh database of its own, so migrations start from nothing."""
    with psycopg.connect(own_database(postgres, "migrations_test"), autocommit=True) as conn:
        yield conn


def tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_from_empty_then_rerun_is_a_no_op(empty_db: psycopg.Connection) -> None:
    applied = migrate(empty_db)
    assert applied == [version for version, _ in migration_files()]
    assert {"cycles", "decisions", "risk_events", "executions", "failures", "schema_migrations"} <= tables(empty_db)
    assert migrate(empty_db) == []
    kind = empty_db.execute("SELECT relkind FROM pg_class WHERE relname = 'decisions'").fetchone()
    assert kind == ("p",)  # declaratively partitioned


def test_0001_rows_survive_the_move_to_partitions(empty_db: psycopg.Connection) -> None:
    # Given a store at 0001 holding two decisions in different months
    assert migrate(empty_db, up_to="0001_decisions") == ["0001_decisions"]
    for as_of, asset in (("2019-06-30T23:00:00Z", "BTCUSD"), ("2019-07-01T01:00:00Z", "ETHUSD")):
        empty_db.execute(
            "INSERT INTO decisions (cycle_id, asset, timeframe, as_of, action, confidence, stale, reason, model,"
            " model_version, signals, source, input_sha256) VALUES ('c1', %s, '1h', %s, 'BUY', 0.4, false,"
            " 'r', 'naive_router', '1', %s, '{}', repeat('0', 64))",
            (asset, as_of, Jsonb({"trend_following": 0.5})),
        )
    # When the rest is applied
    migrate(empty_db)
    # Then both rows are in their month's partition, signals moved into reasons
    rows = empty_db.execute("SELECT tableoid::regclass::text, reasons FROM decisions ORDER BY as_of").fetchall()
    assert [r[0] for r in rows] == ["decisions_2019_06", "decisions_2019_07"]
    assert rows[0][1] == {"signals": {"trend_following": 0.5}}
    assert "decisions_0001" not in tables(empty_db)


def test_partitions_follow_month_boundaries_and_retention_drops_whole_months(empty_db: psycopg.Connection) -> None:
    migrate(empty_db)
    names = [
        empty_db.execute("SELECT ffe_ensure_decision_partition(%s)", (at,)).fetchone()[0]  # type: ignore[index]
        for at in ("2019-06-30T23:59:59.999Z", "2019-07-01T00:00:00Z", "2019-07-31T22:00:00-05:00")
    ]
    assert names == ["decisions_2019_06", "decisions_2019_07", "decisions_2019_08"]  # -05:00 is already August UTC
    with pytest.raises(psycopg.errors.RaiseException, match="keep_months must be at least 1"):
        empty_db.execute("SELECT * FROM ffe_drop_decision_partitions(0)")
    dropped = empty_db.execute("SELECT * FROM ffe_drop_decision_partitions(1, '2019-08-15Z')").fetchall()
    assert dropped == [("decisions_2019_06",)]  # July is the month kept
    assert {"decisions_2019_07", "decisions_2019_08"} <= tables(empty_db)
