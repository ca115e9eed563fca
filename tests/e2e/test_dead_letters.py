"""Nothing is dropped: a decision the store refuses after every retry is parked in SQS and replayed later."""

from __future__ import annotations

from pathlib import Path

import psycopg

from ffe.adapters.store import PostgresDecisionStore
from ffe.domain.errors import TransientError
from ffe.local.aws import LocalCloud
from ffe.local.history import state_visits
from ffe.local.runner import DEFAULT_AS_OF
from tests.conftest import ROOT


def test_database_down_retried_parked_replayed_exactly_once(postgres: str, tmp_path: Path, monkeypatch) -> None:
    parked = tmp_path / "dead-letters.json"
    real_record = PostgresDecisionStore.record_decision

    def database_down(self, record):
        if record.asset == "BTCUSD":
            raise TransientError("cannot reach the decision store: connection refused")
        return real_record(self, record)

    # Given the database refuses BTCUSD's decision on every attempt
    monkeypatch.setattr(PostgresDecisionStore, "record_decision", database_down)
    with LocalCloud(ROOT, postgres, dlq_file=parked) as cloud:
        cycle = {
            **cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF)),
            "assets": ["BTCUSD", "ETHUSD"],
        }
        arn = cloud.start_execution(cycle)
        status = cloud.wait(arn, timeout_s=120)["status"]
        visits = state_visits(cloud.history(arn))
        # Then the state machine retried it (1 + 3 attempts), parked it, and carried on
        record = [v for v in visits if v.name == "Record decision" and v.asset == "BTCUSD"]
        assert record[0].attempts == 4 and record[0].status == "Failed"
        assert any(v.name == "Defer the record to the dead-letter queue" for v in visits)
        assert status == "SUCCEEDED" and len(cloud.dead_letters()) == 1
    assert parked.exists()  # the parked record outlives the process, like the SQS queue would

    def count(asset: str) -> int:
        with psycopg.connect(postgres) as conn:
            row = conn.execute(
                "SELECT count(*) FROM decisions WHERE cycle_id = %s AND asset = %s", (cycle["cycle_id"], asset)
            ).fetchone()
        return int(row[0]) if row else 0

    assert count("BTCUSD") == 0 and count("ETHUSD") == 1

    # When the database is back and the queue is replayed (twice: replay is idempotent)
    monkeypatch.setattr(PostgresDecisionStore, "record_decision", real_record)
    with LocalCloud(ROOT, postgres, dlq_file=parked) as cloud:
        report = cloud.replay_dead_letters()
        again = cloud.replay_dead_letters()
        assert cloud.dead_letters() == []
    # Then the decision is stored exactly once and the queue is empty
    assert (report.replayed, report.failed, again.replayed) == (1, [], 0)
    assert count("BTCUSD") == 1
    assert not parked.exists()


def test_replay_keeps_what_the_store_still_refuses(postgres: str, tmp_path: Path, monkeypatch) -> None:
    parked = tmp_path / "dead-letters.json"
    monkeypatch.setattr(
        PostgresDecisionStore,
        "record_decision",
        lambda self, record: (_ for _ in ()).throw(TransientError("still down")),
    )
    with LocalCloud(ROOT, postgres, dlq_file=parked) as cloud:
        cycle = {**cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", DEFAULT_AS_OF)), "assets": ["ETHUSD"]}
        cloud.wait(cloud.start_execution(cycle), timeout_s=120)
        report = cloud.replay_dead_letters()
        assert report.replayed == 0 and "TransientError: still down" in report.failed[0]
        assert len(cloud.dead_letters()) == 1  # kept for the next replay
    assert parked.exists()
