"""A parked record the store can never accept goes to the poison shelf with its reason (`ffe dlq list` shows it)
instead of blocking the dead-letter queue, as a user runs `ffe dlq replay`."""

import json
import uuid
from pathlib import Path

import pytest

from ffe.cli import main


def test_a_record_the_store_can_never_accept_is_shelved_with_its_reason(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    state = tmp_path / "state"
    state.mkdir()
    # Given two parked records: one the store can write, one it refuses as malformed (a decision without fields)
    good = {
        "kind": "failure",
        "cycle_id": f"c-{uuid.uuid4()}",
        "asset": "BTCUSD",
        "error": "TransientError",
        "cause": "database down",
        "record_error": {"Error": "TransientError", "Cause": "down"},
    }
    poison = {
        "kind": "decision",
        "cycle_id": "c-poison",
        "asset": "BTCUSD",
        "action": "BUY",
        "record_error": {"Error": "TransientError", "Cause": "down"},
    }
    (state / "dead-letters.json").write_text(json.dumps([json.dumps(good), json.dumps(poison)]))
    # When the queue is replayed
    assert main(["--state-dir", str(state), "dlq", "replay"]) == 0
    replayed = capsys.readouterr().out
    # Then the good one is written, the malformed one moves to the poison shelf with why, and the queue is empty
    assert "replayed 1 record(s); 0 kept in the queue; 1 moved to the poison shelf" in replayed
    assert "shelved: " in replayed and "InvalidInputError: invalid RecordDecisionInput" in replayed
    assert not (state / "dead-letters.json").exists()
    # And `ffe dlq list` shows the shelf, and a second replay has nothing left to try
    assert main(["--state-dir", str(state), "dlq", "list"]) == 0
    listed = capsys.readouterr().out
    assert "0 record(s) waiting in the dead-letter queue" in listed
    assert "1 record(s) on the poison shelf" in listed and "c-poison" in listed and "InvalidInputError" in listed
    assert main(["--state-dir", str(state), "dlq", "replay"]) == 0
    assert "replayed 0 record(s); 0 kept in the queue; 0 moved" in capsys.readouterr().out
    main(["--state-dir", str(state), "reset"])


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("dead-letters.json", "{not json", "is not JSON"),
        ("dead-letters.json", '{"a": 1}', "holds JSON dict"),
        ("poison-records.json", '[{"x": 1}]', "entry 1 is neither a record body nor {body, reason}"),
    ],
)
def test_a_queue_file_that_is_not_one_is_a_clear_error_and_nothing_starts(
    tmp_path: Path, capsys, monkeypatch, name: str, content: str, problem: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    state = tmp_path / "state"
    state.mkdir()
    (state / name).write_text(content)
    for action in ("list", "replay"):
        assert main(["--state-dir", str(state), "dlq", action]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ffe dlq: error: ") and problem in err and "Traceback" not in err
    assert (state / name).read_text() == content  # left as it was
