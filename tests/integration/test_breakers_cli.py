"""`ffe breakers`: every shared breaker listed, one closed by hand with who and why (moto's DynamoDB)."""

from __future__ import annotations

import getpass
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pybreaker
import pytest
from moto import mock_aws

from ffe.adapters.breaker import DynamoDBBreakerStorage, make_breaker
from ffe.cli import main
from ffe.local.breakers import local_breaker_table, read, restore, save
from tests.fakes.dynamodb import breaker_table


def trip(table: Any, name: str, fail_max: int = 2, reset_timeout_s: float = 30) -> pybreaker.CircuitBreaker:
    """A breaker on ``table``'s item, opened by ``fail_max`` failures."""
    breaker = make_breaker(
        name, DynamoDBBreakerStorage(table, name), fail_max=fail_max, reset_timeout_s=reset_timeout_s
    )

    def boom() -> None:
        raise ConnectionError("venue down")

    for _ in range(fail_max):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.current_state == "open"
    return breaker


def listed(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    capsys.readouterr()  # what tripping a breaker logged
    assert main([*argv, "breakers", "--json"]) == 0
    return {b["name"]: b for b in json.loads(capsys.readouterr().out)["breakers"]}


def test_lists_every_local_breaker_with_when_it_half_opens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a local run that opened Coinbase's breaker (kept in the state dir between commands)
    with local_breaker_table(tmp_path / "breakers.json") as table:
        trip(table, "coinbase", reset_timeout_s=45)
    # When listing the breakers
    breakers = listed(capsys, "--state-dir", str(tmp_path))
    # Then every provider's and the inference endpoint's breaker is there, Coinbase open until its cool-down ends
    assert sorted(breakers) == ["alpha_vantage", "coinbase", "inference:ffe-dev-inference", "oanda"]
    coinbase = breakers["coinbase"]
    assert coinbase["state"] == "open" and coinbase["failures"] == 2
    opened = datetime.fromisoformat(coinbase["opened_at"])
    assert datetime.fromisoformat(coinbase["next_half_open"]) - opened == timedelta(seconds=45)
    assert breakers["oanda"] == {
        "name": "oanda",
        "state": "closed",
        "failures": 0,
        "opened_at": None,
        "next_half_open": None,
        "reset_by": None,
        "reset_why": None,
        "reset_at": None,
    }
    # And the table view shows the same rows
    capsys.readouterr()
    assert main(["--state-dir", str(tmp_path), "breakers"]) == 0
    text = capsys.readouterr().out
    assert "4 shared circuit breaker(s) in the local runtime" in text and re.search(r"^coinbase +open +2 ", text, re.M)


def test_reset_closes_a_breaker_and_records_who_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with local_breaker_table(tmp_path / "breakers.json") as table:
        trip(table, "oanda")
    # When an operator closes it by hand
    argv = ["--state-dir", str(tmp_path), "breakers", "reset", "oanda", "--why", "Oanda says the outage is over"]
    capsys.readouterr()
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("closed oanda (was open, 2 failure(s))")
    # Then the structured log line (on stderr, stdout is the command's) names the breaker, who and why
    line = json.loads(next(x for x in err.splitlines() if "reset by hand" in x))
    assert line["breaker"] == "oanda" and line["reset_by"] == getpass.getuser() and line["from"] == "open"
    # And the item says closed, no failures, who and why
    oanda = listed(capsys, "--state-dir", str(tmp_path))["oanda"]
    assert (oanda["state"], oanda["failures"], oanda["opened_at"], oanda["next_half_open"]) == ("closed", 0, None, None)
    assert oanda["reset_by"] == getpass.getuser() and oanda["reset_why"] == "Oanda says the outage is over"
    # And the next call through the shared item goes to the venue again
    with local_breaker_table(tmp_path / "breakers.json") as table:
        breaker = make_breaker("oanda", DynamoDBBreakerStorage(table, "oanda"), fail_max=2)
        assert breaker.call(lambda: "bars") == "bars" and breaker.current_state == "closed"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["reset", "nyse", "--why", "x"],
            "no breaker 'nyse'; the stage has coinbase, oanda, alpha_vantage, inference:ffe-dev-inference",
        ),
        (["reset", "coinbase"], 'reset needs --why "..."'),
        (["reset", "coinbase", "--why", "  "], 'reset needs --why "..."'),
        (["reset"], "reset needs the NAME of a breaker"),
        (["coinbase"], "invalid choice: 'coinbase'"),
    ],
)
def test_a_bad_reset_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code: int | str | None
    try:
        code = main(["--state-dir", str(tmp_path), "breakers", *argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and not (tmp_path / "breakers.json").exists()
    if argv != ["coinbase"]:  # argparse's own error comes after its usage lines
        assert len(err.strip().splitlines()) == 1


def test_a_deployed_stage_in_aws_records_the_caller_identity(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        # Given the deployed stage's breaker table with the inference endpoint's breaker open
        table = breaker_table(boto3.resource("dynamodb", region_name="us-east-1"), "ffe-test-circuit-breakers")
        trip(table, "inference:ffe-test-inference", fail_max=3, reset_timeout_s=30)
        stage = ["breakers", "--stage", "test", "--region", "us-east-1"]
        capsys.readouterr()
        # When listing and resetting it
        assert main([*stage, "--json"]) == 0
        before = {b["name"]: b for b in json.loads(capsys.readouterr().out)["breakers"]}
        assert main([*stage, "reset", "inference:ffe-test-inference", "--why", "endpoint redeployed", "--json"]) == 0
        after = json.loads(capsys.readouterr().out)
    # Then the listing had it open, and the reset recorded the AWS caller
    assert before["inference:ffe-test-inference"]["state"] == "open"
    assert after["before"]["failures"] == 3 and after["after"]["state"] == "closed"
    assert after["after"]["reset_by"].startswith("arn:aws:") and after["after"]["reset_why"] == "endpoint redeployed"


def test_a_stage_that_is_not_deployed_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        assert main(["breakers", "--stage", "nope", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ffe breakers: error: stage 'nope' in AWS:") and len(err.strip().splitlines()) == 1


def test_saving_keeps_a_reset_made_while_a_run_was_going(tmp_path: Path) -> None:
    path = tmp_path / "breakers.json"
    with local_breaker_table(path) as table:
        trip(table, "coinbase")
    with mock_aws():
        # Given a run that restored the breakers when it started (Coinbase open) and left Coinbase alone
        table = breaker_table(boto3.resource("dynamodb", region_name="us-east-1"), "run")
        restored = restore(table, path)
        trip(table, "oanda")  # but opened Oanda's
        at_exit = table.scan()["Items"]
    # When an operator resets Coinbase meanwhile, and then the run saves its table
    assert main(["--state-dir", str(tmp_path), "breakers", "reset", "coinbase", "--why", "back"]) == 0
    save(_Scanned(at_exit), path, restored)
    # Then the file keeps the reset and takes the run's own change
    saved = read(path)
    assert saved["coinbase"]["state"] == "closed" and saved["oanda"]["state"] == "open"


class _Scanned:
    """What a run's table held when it stopped."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def scan(self) -> dict[str, Any]:
        return {"Items": self.items}
