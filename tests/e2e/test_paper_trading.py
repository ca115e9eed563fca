"""Paper trading through the real state machine: orders placed by ExecuteOrder fill at the next bar's open
in a later cycle, so positions carry over from cycle to cycle; a retried ExecuteOrder places one order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ffe.local.aws import LocalCloud
from tests.conftest import ROOT
from tests.database import own_database

FIRST = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def paper_db(postgres: str) -> str:
    """A database of its own: the stage's paper account must start empty."""
    return own_database(postgres, "paper_e2e")


@pytest.fixture(scope="module")
def cloud(paper_db: str) -> Iterator[LocalCloud]:
    with LocalCloud(ROOT, paper_db) as deployed:
        yield deployed


def cycle(cloud: LocalCloud, as_of: datetime) -> str:
    body = {**cloud.schedules["1h"].input_for(cloud.scheduled_event("1h", as_of)), "assets": ["BTCUSD"]}
    arn = cloud.start_execution(body)
    assert cloud.wait(arn, timeout_s=120)["status"] == "SUCCEEDED"
    return str(body["cycle_id"])


def rows(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def test_positions_carry_over_between_cycles(cloud: LocalCloud, paper_db: str) -> None:
    # Given a BUY decided at 12:01 on the 11:00 bar: its paper order fills at the next bar's (12:00) open
    first = cycle(cloud, FIRST)
    [order] = rows(
        paper_db,
        "SELECT e.*, d.id AS decided FROM executions e JOIN decisions d ON d.id = e.decision_id"
        " AND d.as_of = e.as_of WHERE d.cycle_id = %s",
        first,
    )
    assert (order["venue"], order["mode"], order["side"], order["status"]) == ("paper", "paper", "BUY", "PENDING")
    assert rows(paper_db, "SELECT * FROM paper_positions WHERE quantity <> 0") == []
    # And a retried ExecuteOrder (same payload, twice) places nothing new
    retry_execute_order(cloud, paper_db, first)
    # When the next cycle runs at 13:01 (the 12:00 bar is complete by then)
    cycle(cloud, FIRST + timedelta(hours=1))
    # Then the order filled at the 12:00 open, and the position is there for the cycle after
    [filled] = rows(paper_db, "SELECT * FROM paper_orders WHERE client_order_id = %s", order["client_order_id"])
    assert filled["status"] == "FILLED" and filled["filled_bar_time"] == datetime(2019, 6, 15, 12, tzinfo=UTC)
    cycle(cloud, FIRST + timedelta(hours=2))
    [position] = rows(paper_db, "SELECT * FROM paper_positions WHERE asset = 'BTCUSD'")
    assert Decimal(position["quantity"]) >= Decimal(order["quantity"])
    account = rows(paper_db, "SELECT cash FROM paper_accounts")[0]
    assert Decimal(account["cash"]) < Decimal("100000")  # the fill was paid for, with its fee


def retry_execute_order(cloud: LocalCloud, paper_db: str, cycle_id: str) -> None:
    """Invoke ExecuteOrder again with the payload the state machine sent: no second order may appear."""
    [decision] = rows(paper_db, "SELECT * FROM decisions WHERE cycle_id = %s", cycle_id)
    payload = {
        "kind": "decision",
        "cycle_id": cycle_id,
        "as_of": decision["as_of"].isoformat(),
        "timeframe": "1h",
        "asset": "BTCUSD",
        "bar_time": decision["bar_time"].isoformat(),
        "action": decision["action"],
        "confidence": decision["confidence"],
        "stale": False,
        "reason": decision["reason"],
        "data_age_seconds": decision["data_age_seconds"],
        "staleness_threshold_seconds": 7200,
        "model": decision["model"],
        "model_version": decision["model_version"],
        "signals": {},
        "source": decision["source"],
        "input_sha256": decision["input_sha256"],
        "size": float(decision["size"]),
        "risk": decision["reasons"]["risk"],
        "recorded": {
            "kind": "decision",
            "id": decision["id"],
            "created": False,
            "cycle_id": cycle_id,
            "asset": "BTCUSD",
            "execute": True,
        },
    }
    first, again = cloud.invoke("execute-order", payload), cloud.invoke("execute-order", payload)
    assert first["client_order_id"] == again["client_order_id"]
    assert first["created"] is False and again["created"] is False  # the cycle already placed it
    assert len(rows(paper_db, "SELECT * FROM executions WHERE decision_id = %s", decision["id"])) == 1
    assert len(rows(paper_db, "SELECT * FROM paper_orders WHERE client_order_id = %s", first["client_order_id"])) == 1
