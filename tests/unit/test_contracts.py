import json
from pathlib import Path

import pytest

from ffe.contracts import AssetTask, CycleInput, DecisionRecord, FailureRecord, parse, parse_record
from ffe.domain.errors import InvalidInputError

EVENTS = Path(__file__).resolve().parents[1] / "events"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_valid_cycle_input_parses_to_utc() -> None:
    cycle = parse(CycleInput, {**event("cycle_input.json"), "as_of": "2019-06-15T14:01:00+02:00"})
    assert cycle.as_of.isoformat() == "2019-06-15T12:01:00+00:00"
    assert cycle.assets == ["BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"]


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"timeframe": "2h"}, "timeframe", "Input should be"),
        ({"as_of": "yesterday"}, "as_of", "valid datetime"),
        ({"as_of": "2019-06-15T12:01:00"}, "as_of", "timezone"),
        ({"assets": []}, "assets", "at least 1"),
        ({"assets": ["BTCUSD", "BTCUSD"]}, "assets", "duplicated assets: BTCUSD"),
        ({"assets": ["btc usd"]}, "assets.0", "pattern"),
        ({"cycle_id": ""}, "cycle_id", "at least 1"),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_malformed_cycle_input_names_the_field(change: dict, field: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"invalid CycleInput: .*{field}: .*{why}"):
        parse(CycleInput, {**event("cycle_input.json"), **change})


def test_missing_field_is_named() -> None:
    raw = event("cycle_input.json")
    del raw["assets"]
    with pytest.raises(InvalidInputError, match="assets: Field required"):
        parse(CycleInput, raw)


def test_non_object_event_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="invalid AssetTask: <event>"):
        parse(AssetTask, ["not", "an", "object"])


def test_record_payload_is_told_apart_by_kind() -> None:
    failure = parse_record({"kind": "failure", "error": "InvalidInputError", "cycle_id": 7, "asset": None})
    assert isinstance(failure, FailureRecord) and failure.cycle_id == "7"
    with pytest.raises(InvalidInputError, match="RecordDecisionInput"):
        parse_record({"kind": "mystery"})


def test_decision_record_rejects_out_of_range_confidence() -> None:
    with pytest.raises(InvalidInputError, match="confidence"):
        parse(DecisionRecord, {"kind": "decision", "confidence": 1.5})
