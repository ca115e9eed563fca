"""The store's writes under pressure: concurrent duplicates, month boundaries, cycles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg

from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import CycleHeader, DataSource, DecisionRecord
from ffe.domain.models import Action, Timeframe
from ffe.domain.ports import Stored

SOURCE = DataSource(provider="replay", dataset="test", synthetic=False, simulated_clock=True)


def decision(cycle_id: str, as_of: datetime, asset: str = "BTCUSD") -> DecisionRecord:
    return DecisionRecord(
        cycle_id=cycle_id,
        as_of=as_of,
        timeframe=Timeframe.H1,
        asset=asset,
        bar_time=as_of.replace(minute=0),
        action=Action.HOLD,
        confidence=0.9,
        stale=False,
        reason="test",
        data_age_seconds=60.0,
        staleness_threshold_seconds=7200,
        model="naive_router",
        model_version="1",
        source=SOURCE,
        input_sha256="0" * 64,
    )


def test_concurrent_duplicate_writes_give_exactly_one_row(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    # Given eight containers, each with its own connection, racing to write the same decision
    record = decision(cycle_id, datetime(2019, 6, 15, 12, 1, tzinfo=UTC))
    stores = [PostgresDecisionStore(postgres) for _ in range(8)]
    results: list[Stored] = []
    barrier = threading.Barrier(len(stores))

    def write(store: PostgresDecisionStore) -> None:
        with store.database.connection():  # connect (and migrate) before the race starts
            pass
        barrier.wait()
        results.append(store.record_decision(record))

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one write created the row and every other one found it
    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert len({r.id for r in results}) == 1
    count = db.execute("SELECT count(*) FROM decisions WHERE cycle_id = %s", (cycle_id,)).fetchone()
    assert count == (1,)
    for store in stores:
        store.close()


def test_decisions_land_in_the_partition_of_their_month(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    store = PostgresDecisionStore(postgres)
    before = decision(cycle_id, datetime(2021, 2, 28, 23, 59, tzinfo=UTC), "BTCUSD")
    after = decision(cycle_id, datetime(2021, 3, 1, 0, 1, tzinfo=UTC), "ETHUSD")
    store.record_decision(before)
    store.record_decision(after)
    rows = db.execute(
        "SELECT asset, tableoid::regclass::text FROM decisions WHERE cycle_id = %s ORDER BY as_of", (cycle_id,)
    ).fetchall()
    assert rows == [("BTCUSD", "decisions_2021_02"), ("ETHUSD", "decisions_2021_03")]
    store.close()


def test_cycle_opens_once_and_closes_once(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    store = PostgresDecisionStore(postgres, stage="dev")
    header = CycleHeader.model_validate(
        {"cycle_id": cycle_id, "assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2019-06-15T12:01:00Z"}
    )
    assert store.open_cycle(header, "arn:exec").created is True
    assert store.open_cycle(header, "arn:exec").created is False  # a retried task
    assert store.close_cycle(cycle_id, "SUCCEEDED") is True
    assert store.close_cycle(cycle_id, "FAILED") is False  # closed stays closed
    row = db.execute("SELECT status, stage, as_of, finished_at IS NOT NULL FROM cycles WHERE id = %s", (cycle_id,))
    assert row.fetchone() == ("SUCCEEDED", "dev", datetime(2019, 6, 15, 12, 1, tzinfo=UTC), True)
    store.close()


def test_cycle_with_unreadable_as_of_is_still_registered(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    store = PostgresDecisionStore(postgres)
    header = CycleHeader.model_validate({"cycle_id": cycle_id, "assets": ["BTCUSD"], "timeframe": "2h", "as_of": "x"})
    store.open_cycle(header, "arn:exec")
    assert db.execute("SELECT timeframe, as_of FROM cycles WHERE id = %s", (cycle_id,)).fetchone() == ("2h", None)
    store.close()


def test_backfill_copies_many_and_is_idempotent(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    store = PostgresDecisionStore(postgres)
    records = [
        decision(cycle_id, datetime(2020, month, 10, hour, 1, tzinfo=UTC), asset)
        for month in (1, 2)
        for hour in range(3)
        for asset in ("BTCUSD", "ETHUSD")
    ]
    assert store.backfill(records) == 12
    assert store.backfill(records) == 0  # the same batch again adds nothing
    assert store.record_decision(records[0]).created is False  # and meets single writes on the same key
    rows = db.execute(
        "SELECT tableoid::regclass::text, count(*) FROM decisions WHERE cycle_id = %s GROUP BY 1 ORDER BY 1",
        (cycle_id,),
    ).fetchall()
    assert rows == [("decisions_2020_01", 6), ("decisions_2020_02", 6)]
    store.close()
