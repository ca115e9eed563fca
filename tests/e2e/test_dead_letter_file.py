"""Commands sharing a state dir share its dead-letter file: one ending never drops what another parked."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from ffe.local.aws import LocalCloud
from ffe.local.template import REGION
from tests.conftest import ROOT


def test_a_command_ending_writes_back_only_what_it_changed(postgres: str, tmp_path: Path) -> None:
    # Given one record parked by an earlier run
    parked = tmp_path / "dead-letters.json"
    parked.write_text(json.dumps(["first"]))
    with LocalCloud(ROOT, postgres, dlq_file=parked) as cloud:
        sqs = boto3.client("sqs", region_name=REGION)
        # When this command replays it (stored, so deleted from the queue)...
        message = sqs.receive_message(QueueUrl=cloud.dead_letter_queue_url)["Messages"][0]
        assert message["Body"] == "first"
        sqs.delete_message(QueueUrl=cloud.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
        # ...while another `ffe run` sharing the state dir parks a record and ends first
        parked.write_text(json.dumps(["first", "second"]))
    # Then the file drops what this command replayed and keeps what the other one parked
    assert json.loads(parked.read_text()) == ["second"]
