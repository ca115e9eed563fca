"""Bad cycle inputs through the real state machine: each is a recorded failure that names the problem, and
nothing ends up stuck in the dead-letter queue (test_poison_shelf.py: what the store can never accept)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ffe.local.aws import LocalCloud
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cloud(postgres: str) -> Iterator[LocalCloud]:
    with LocalCloud(ROOT, postgres) as deployed:
        yield deployed


def run(cloud: LocalCloud, body: str) -> tuple[str, dict[str, Any]]:
    arn = cloud.start_execution(body)
    return arn, cloud.wait(arn, timeout_s=120)


def failures(url: str, **where: Any) -> list[dict[str, Any]]:
    clause = " AND ".join(f"{k} = %({k})s" for k in where)
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(f"SELECT * FROM failures WHERE {clause} ORDER BY asset", where).fetchall()


@pytest.mark.parametrize("body", ["null", "[1,2,3]", '"a string"', "42"], ids=["null", "list", "string", "number"])
def test_a_non_object_cycle_input_is_a_recorded_cycle_failure(cloud, postgres, body) -> None:
    arn, description = run(cloud, body)
    # The execution stops at "Cycle failed" (not States.Runtime), and the failure names the problem
    assert description["status"] == "FAILED" and description.get("error") == "CycleFailed", description
    [failure] = failures(postgres, execution_id=arn)
    assert failure["cycle_id"] == f"execution:{arn.rsplit(':', 1)[-1]}" and failure["asset"] is None
    assert failure["error_class"] == "InvalidInputError"
    assert "invalid CycleInput: <event>: Input should be a valid dictionary" in failure["message"]
    assert cloud.dead_letters() == []


def test_two_null_assets_are_two_failures_and_a_long_asset_is_recorded_not_parked(cloud, postgres) -> None:
    cycle = f"bad-assets-{uuid.uuid4()}"
    long_asset = "Z" * 100
    body = {
        "cycle_id": cycle,
        "as_of": "2019-06-15T12:01:00Z",
        "timeframe": "1h",
        "assets": [None, "BTCUSD", None, long_asset],
    }
    _, description = run(cloud, json.dumps(body))
    assert description["status"] == "SUCCEEDED"
    rows = failures(postgres, cycle_id=cycle)
    labels = sorted(r["asset"] for r in rows)
    assert labels[:2] == ["(null, item 0)", "(null, item 2)"] and labels[2].startswith("ZZZZ") and len(labels) == 3
    long_row = next(r for r in rows if r["asset"].startswith("ZZZZ"))
    assert f"(asset given as {long_asset!r})" in long_row["message"]
    assert cloud.dead_letters() == []  # nothing parked that no replay could write


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2999-01-01T00:00:00Z", "as_of: Value error, as_of is in the future: 2999-01-01T00:00:00+00:00 is after now"),
        ("0001-01-01T00:00:00Z", "as_of: Value error, as_of 0001-01-01T00:00:00+00:00 is before 1970-01-01"),
    ],
    ids=["future", "year-1"],
)
def test_a_cycle_dated_in_the_future_or_in_year_1_is_refused_naming_as_of(cloud, postgres, as_of, expected) -> None:
    cycle = f"when-{uuid.uuid4()}"
    body = {"cycle_id": cycle, "as_of": as_of, "timeframe": "1h", "assets": ["BTCUSD"]}
    _, description = run(cloud, json.dumps(body))
    assert description["status"] == "FAILED"
    [failure] = failures(postgres, cycle_id=cycle)
    assert failure["asset"] is None and expected in failure["message"]
