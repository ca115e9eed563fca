"""Nothing is lost, nothing is stuck: whatever a malformed event carried, its failure can be stored (through the
RecordDecision handler and a real PostgreSQL), a non-object cycle input is a recorded cycle failure naming the
problem, two null assets are two failures, and a cycle dated in the future or in year 1 is refused by name."""

from __future__ import annotations

import json
import uuid

import pytest

from ffe.contracts import FailureRecord, parse_record
from functions.record_decision import handler as record_decision


def failures(db, cycle_id: str) -> list[tuple]:
    return db.execute(
        "SELECT asset, error_class, message FROM failures WHERE cycle_id = %s ORDER BY asset", (cycle_id,)
    ).fetchall()


def test_an_asset_label_longer_than_the_column_is_stored_sanitized_with_the_original_in_the_message(
    database_url, db, cycle_id, lambda_context
) -> None:
    asset = "X" * 100
    event = {
        "kind": "failure",
        "cycle_id": cycle_id,
        "asset": asset,
        "error": "InvalidInputError",
        "cause": json.dumps({"errorType": "InvalidInputError", "errorMessage": "invalid AssetTask: asset: ..."}),
    }
    out = record_decision.lambda_handler(event, lambda_context)
    again = record_decision.lambda_handler(event, lambda_context)  # a replay finds it, never a new row
    assert out["created"] is True and again["created"] is False and again["id"] == out["id"]
    [(label, error, message)] = failures(db, cycle_id)
    assert len(label) <= 64 and label.startswith("XXXXXXXX") and error == "InvalidInputError"
    assert message == f"invalid AssetTask: asset: ... (asset given as {asset!r})"


@pytest.mark.parametrize("asset", [None, 42, ["BTCUSD"], {"a": 1}, "BTC\x00USD", "é" * 65])
def test_any_asset_value_gives_a_storable_failure(asset, database_url, db, cycle_id, lambda_context) -> None:
    event = {"kind": "failure", "cycle_id": cycle_id, "asset": asset, "error": "InvalidInputError", "cause": "bad"}
    assert record_decision.lambda_handler(event, lambda_context)["kind"] == "failure"
    assert len(failures(db, cycle_id)) == 1


def test_two_null_assets_of_one_cycle_are_two_failures(database_url, db, cycle_id, lambda_context) -> None:
    for item in (1, 3):
        event = {
            "kind": "failure",
            "cycle_id": cycle_id,
            "asset": None,
            "item": item,
            "error": "InvalidInputError",
            "cause": "invalid AssetTask: asset: Input should be a valid string",
        }
        record_decision.lambda_handler(event, lambda_context)
    rows = failures(db, cycle_id)
    assert [r[0] for r in rows] == ["(null, item 1)", "(null, item 3)"]
    assert all(r[2].endswith("(asset given as 'null')") for r in rows)


def test_an_overlong_cause_or_a_missing_error_name_is_kept_as_far_as_it_can_be() -> None:
    rec = parse_record({"kind": "failure", "cycle_id": "c", "error": "", "cause": "x" * 40_000})
    assert isinstance(rec, FailureRecord) and rec.error == "UnknownError"
    assert len(rec.cause) <= 32768 and rec.cause.endswith("[40000 characters in all]")


@pytest.mark.parametrize(
    ("cycle_input", "problem"),
    [
        (None, "Input should be a valid dictionary"),
        ([1, 2, 3], "Input should be a valid dictionary"),
        ("not an object", "Input should be a valid dictionary"),
        (7, "Input should be a valid dictionary"),
    ],
    ids=["null", "list", "string", "number"],
)
def test_a_non_object_cycle_input_is_a_recorded_cycle_failure_naming_the_problem(
    cycle_input, problem, database_url, db, lambda_context
) -> None:
    execution = f"arn:aws:states:us-east-1:123456789012:execution:ffe-dev-decision-cycle:{uuid.uuid4()}"
    event = {
        "kind": "failure",
        "cycle_input": cycle_input,
        "cycle_failure": True,
        "execution_id": execution,
        "error": "InvalidInputError",
        "cause": "invalid CycleHeader",
    }
    out = record_decision.lambda_handler(event, lambda_context)
    name = f"execution:{execution.rsplit(':', 1)[-1]}"
    assert out["cycle_id"] == name
    [(asset, error, message)] = failures(db, name)
    assert asset is None and error == "InvalidInputError" and problem in message


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2999-01-01T00:00:00Z", "as_of is in the future: 2999-01-01T00:00:00+00:00 is after now"),
        ("0001-01-01T00:00:00Z", "as_of 0001-01-01T00:00:00+00:00 is before 1970-01-01: no market data is that old"),
    ],
    ids=["future", "year-1"],
)
def test_a_cycle_dated_in_the_future_or_year_1_is_refused_at_open_naming_as_of(
    as_of, expected, database_url, db, cycle_id, lambda_context
) -> None:
    from ffe.domain.errors import InvalidInputError

    raw = {"cycle_id": cycle_id, "as_of": as_of, "timeframe": "1h", "assets": ["BTCUSD"]}
    with pytest.raises(InvalidInputError, match="as_of"):
        record_decision.lambda_handler({"kind": "cycle_opened", "cycle": raw, "execution_id": "arn:x"}, lambda_context)
    # the state machine then records the cycle failure, which names the field
    event = {
        "kind": "failure",
        "cycle_input": raw,
        "cycle_failure": True,
        "execution_id": "arn:x",
        "error": "InvalidInputError",
        "cause": "x",
    }
    record_decision.lambda_handler(event, lambda_context)
    [(_, error, message)] = failures(db, cycle_id)
    assert error == "InvalidInputError" and f"as_of: Value error, {expected}" in message
    assert db.execute("SELECT count(*) FROM cycles WHERE id = %s", (cycle_id,)).fetchone() == (0,)
