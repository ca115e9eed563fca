"""The store writes exactly the rows a plain psycopg INSERT / COPY of the record's ``model_dump`` writes.

Every column is compared as PostgreSQL prints it (jsonb and numeric included), so a serializer that changed a
stored value (a float's digits, a number's scale, a key, an escape) would fail here.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from pydantic_core import to_json

from ffe.adapters import store as store_module
from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import ArmOutput, DataSource, DecisionRecord, RiskAssessment, RouteStepModel, VoterOutput
from ffe.domain.models import Action, Timeframe
from tests.decision_reference import PLAIN_COPY, PLAIN_INSERT, PLAIN_RISK_INSERT, plain_risk_rows, plain_row

AS_OF = datetime(2018, 3, 31, 23, 1, tzinfo=UTC)
TEXT = 'tab\there, newline\nthere, a "quote", a back\\slash, é, ∑, 😀'
SOURCE = DataSource(
    provider="replay",
    dataset="test",
    synthetic=False,
    simulated_clock=True,
    route=[
        RouteStepModel(provider="live", outcome="failed", error=TEXT),
        RouteStepModel(provider="replay", outcome="ok"),
    ],
    cached_bars=7,
)


def records(cycle_id: str) -> list[DecisionRecord]:
    """Decisions with the values a serializer could get wrong: tiny and long floats, text to escape, every JSON
    column filled or empty, a verdict with and without rules, an experiment's arms."""
    risk = RiskAssessment(
        approved=False,
        side="SELL",
        quantity=Decimal("0.000010"),
        reasons=["position_cap", "var_limit"],
        detail={"position_cap": TEXT, "var_limit": "1e-05"},
        broker="paper",
        equity=Decimal("10000.50"),
        original_action=Action.SELL,
        original_confidence=6.744858305023273e-08,
    )
    voters = [
        VoterOutput(
            voter="rl",
            status="voted",
            action=Action.SELL,
            confidence=0.30000000000000004,
            model="meta",
            model_version="ffe-000000000001",
            latency_ms=2.5e-05,
            weights={"trend_following": 9.265066237858661e-05, "mean_reversion": 0.9999073493376214},
        ),
        VoterOutput(voter="llm", status="abstained", reasoning=TEXT, latency_ms=1234.5),
    ]
    full = DecisionRecord(
        cycle_id=cycle_id,
        as_of=AS_OF,
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        execution_id="arn:aws:states:us-east-1:123456789012:execution:cycle:x",
        bar_time=AS_OF - timedelta(minutes=61),
        action=Action.HOLD,
        confidence=1.0,
        stale=False,
        reason=TEXT,
        data_age_seconds=1e-07,
        staleness_threshold_seconds=7200,
        model="meta_controller",
        model_version="ffe-000000000001",
        signals={"trend_following": -6.744858305023273e-08, "mean_reversion": 0.1, "breakout": 1.0, "flat": 0.0},
        source=SOURCE,
        input_sha256="a" * 64,
        regime="trend",
        regime_probabilities={"trend": 0.9999999999999999, "range": 1e-20},
        weights={"trend_following": 1 / 3, "mean_reversion": 2 / 3},
        size=0.1 + 0.2,
        risk=risk,
        voters=voters,
        bar_close=123456789.12345679,
        experiment_id="exp-1",
        arm="treatment",
        arms={
            "control": ArmOutput(model_version="ffe-000000000001", action=Action.BUY, confidence=0.5, latency_ms=3.25),
            "treatment": ArmOutput(model_version="ffe-000000000002", action=None, reason=TEXT),
        },
    )
    approved = full.model_copy(
        update={
            "asset": "ETHUSD",
            "action": Action.BUY,
            "risk": risk.model_copy(update={"approved": True, "side": "BUY", "reasons": [], "detail": {}}),
            "experiment_id": None,
            "arm": None,
            "arms": {},
        }
    )
    hold = DecisionRecord(
        cycle_id=cycle_id,
        as_of=AS_OF,
        timeframe=Timeframe.D1,
        asset="EURUSD",
        bar_time=None,
        action=Action.HOLD,
        confidence=1.0,
        stale=True,
        reason="stale",
        data_age_seconds=None,
        staleness_threshold_seconds=None,
        model="staleness_gate",
        model_version="1",
        source=SOURCE.model_copy(update={"route": []}),
        input_sha256="b" * 64,
    )
    return [full, approved, hold]


def stored(db: psycopg.Connection, cycle_id: str) -> list[tuple[str, list[str]]]:
    """Each decision of the cycle as PostgreSQL prints the row (less its id, cycle id and insert time), with its
    risk events (less theirs), by asset."""
    rows = db.execute(
        "SELECT (to_jsonb(d) - 'id' - 'cycle_id' - 'created_at')::text,"
        " ARRAY(SELECT (to_jsonb(r) - 'id' - 'decision_id' - 'cycle_id' - 'created_at')::text"
        "       FROM risk_events r WHERE r.decision_id = d.id ORDER BY r.id)"
        " FROM decisions d WHERE d.cycle_id = %s ORDER BY d.asset",
        (cycle_id,),
    ).fetchall()
    return [(row, events) for row, events in rows]


def plain_inserts(conn: psycopg.Connection, batch: list[DecisionRecord]) -> None:
    for record in batch:
        with conn.transaction():
            decision_id = conn.execute(PLAIN_INSERT, plain_row(record, "dev")).fetchone()[0]  # type: ignore[index]
            with conn.cursor() as cur:
                cur.executemany(PLAIN_RISK_INSERT, plain_risk_rows(record, decision_id))


def test_a_recorded_decision_is_the_row_a_plain_insert_stores(
    postgres: str, db: psycopg.Connection, cycle_id: str
) -> None:
    store = PostgresDecisionStore(postgres, stage="dev")
    for record in records(cycle_id):
        assert store.record_decision(record).created
    plain_inserts(db, records(f"{cycle_id}-plain"))
    assert stored(db, cycle_id) == stored(db, f"{cycle_id}-plain")
    assert [len(events) for _, events in stored(db, cycle_id)] == [2, 0, 0]  # one event per rule, blocked or not
    store.close()


def test_a_backfilled_batch_is_the_rows_a_plain_copy_stores(
    postgres: str, db: psycopg.Connection, cycle_id: str
) -> None:
    store = PostgresDecisionStore(postgres, stage="dev")
    assert store.backfill(records(cycle_id)) == 3
    with db.cursor().copy(PLAIN_COPY) as copy:
        for record in records(f"{cycle_id}-plain"):
            copy.write_row(plain_row(record, "dev"))
    assert stored(db, cycle_id) == stored(db, f"{cycle_id}-plain")
    # a batch that meets stored rows takes the idempotent path, and stores the same rows
    again = records(cycle_id) + records(f"{cycle_id}-again")
    assert store.backfill(again) == 3
    assert stored(db, f"{cycle_id}-again") == stored(db, f"{cycle_id}-plain")
    store.close()


def test_a_backfill_counts_only_new_rows_and_a_repeated_one_once(
    postgres: str, db: psycopg.Connection, cycle_id: str
) -> None:
    store = PostgresDecisionStore(postgres)
    first, second, third = records(cycle_id)
    assert store.backfill([second, first, first]) == 2  # one given twice: the COPY fails, the idempotent path counts
    assert store.backfill([first, third, third]) == 1  # the first stored already: the idempotent path at once
    assert store.backfill([]) == 0
    count = db.execute("SELECT count(*) FROM decisions WHERE cycle_id = %s", (cycle_id,)).fetchone()
    assert count == (3,)
    store.close()


def test_a_backfill_in_several_copies_is_one_batch(
    postgres: str, db: psycopg.Connection, cycle_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BACKFILL_COPY_ROWS", 2)
    store = PostgresDecisionStore(postgres, stage="dev")
    assert store.backfill(records(cycle_id)) == 3
    # a stored row in the second COPY rolls the first back too: the idempotent path stores the rest, once
    again = records(f"{cycle_id}-again")
    assert store.backfill(again[:2] + records(cycle_id)[2:] + again[2:]) == 3
    with db.cursor().copy(PLAIN_COPY) as copy:
        for record in records(f"{cycle_id}-plain"):
            copy.write_row(plain_row(record, "dev"))
    assert stored(db, cycle_id) == stored(db, f"{cycle_id}-plain") == stored(db, f"{cycle_id}-again")
    store.close()


def test_a_retried_record_adds_the_risk_events_its_decision_lacks(
    postgres: str, db: psycopg.Connection, cycle_id: str
) -> None:
    # Given a decision stored without its risk events (a backfill writes none)
    store = PostgresDecisionStore(postgres, stage="dev")
    record = records(cycle_id)[0]
    store.backfill([record])
    # When RecordDecision writes it (twice, as a retried task would)
    first = store.record_decision(record)
    second = store.record_decision(record)
    # Then the stored decision is found, never doubled, and gets one event per rule, once
    assert first.created is False and second == first
    plain = records(f"{cycle_id}-plain")[0]
    with db.cursor().copy(PLAIN_COPY) as copy:
        copy.write_row(plain_row(plain, "dev"))
    plain_id = db.execute("SELECT id FROM decisions WHERE cycle_id = %s", (plain.cycle_id,)).fetchone()[0]  # type: ignore[index]
    db.cursor().executemany(PLAIN_RISK_INSERT, plain_risk_rows(plain, plain_id))
    assert stored(db, cycle_id) == stored(db, plain.cycle_id)
    store.close()


def test_a_rule_named_twice_is_one_risk_event(postgres: str, db: psycopg.Connection, cycle_id: str) -> None:
    store = PostgresDecisionStore(postgres)
    record = records(cycle_id)[0]
    assert record.risk is not None
    twice = record.risk.model_copy(update={"reasons": ["var_limit", "position_cap", "var_limit"]})
    store.record_decision(record.model_copy(update={"risk": twice}))
    rules = db.execute("SELECT rule FROM risk_events WHERE cycle_id = %s ORDER BY id", (cycle_id,)).fetchall()
    assert rules == [("var_limit",), ("position_cap",)]
    store.close()


def test_jsonb_stores_both_serializers_floats_alike(db: psycopg.Connection) -> None:
    # json.dumps writes 1e-05 where pydantic-core writes 0.00001: the same digits, the same numeric in jsonb
    rng = random.Random(16)
    values = [rng.random() * 10 ** rng.randint(-30, 30) * rng.choice((1, -1)) for _ in range(2000)]
    values += [0.0, 1.0, 1e-05, 1e-07, 1e16, 1e17, 1e22, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
    rows = db.execute(
        "SELECT a::jsonb::text = b::jsonb::text FROM unnest(%s::text[], %s::text[]) AS v (a, b)",
        ([json.dumps(v) for v in values], [to_json(v).decode() for v in values]),
    ).fetchall()
    assert rows == [(True,)] * len(values)
