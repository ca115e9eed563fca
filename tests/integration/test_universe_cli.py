"""`ffe universe check|put|show` end to end through `ffe.cli.main`, against moto's S3 and STS: the stage's bucket
found from the account id, the canonical file written, the diff against the file it replaces, --dry-run writing
nothing, and every mistake one line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ffe.cli import main
from ffe.universe_file import dump_universe, parse_universe
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples/universe/crypto-fx.csv"
BUCKET = "ffe-dev-cycles-123456789012"  # moto's account id
Capture = pytest.CaptureFixture[str]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def one_error_line(capsys: Capture, code: int, *words: str) -> str:
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ffe universe: error: "), captured.err
    assert "Traceback" not in captured.err
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_check_prints_the_table_and_counts_offline(capsys: Capture) -> None:
    assert main(["universe", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["asset", "class", "venue", "enabled"]
    assert out[2].split() == ["BTCUSD", "crypto", "coinbase", "yes"]
    assert ["LTCUSD", "crypto", "coinbase", "no"] in [line.split() for line in out]
    assert out[-1] == "8 assets, 7 enabled, 1 disabled (crypto 4, fx 4)"


def test_check_refuses_a_bad_file_in_one_line(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "u.csv"
    bad.write_text("asset,class\nBTCUSD,crypto\nSOLUSD,metal\n")
    line = one_error_line(capsys, main(["universe", "check", str(bad)]))
    assert line == f"ffe universe: error: {bad}: row 2 (line 3), class: 'metal' is not a class: crypto, fx, equity"


def test_put_writes_the_canonical_file_in_the_stages_bucket_then_show_prints_it(s3: Any, capsys: Capture) -> None:
    assert main(["universe", "put", "--stage", "dev", "--timeframe", "15m", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert f"wrote s3://{BUCKET}/universe/15m.json (dev, 15m): 8 assets, 7 enabled, 1 disabled" in out
    assert "no previous file" in out
    stored = s3.get_object(Bucket=BUCKET, Key="universe/15m.json")
    assert stored["ContentType"] == "application/json"
    assert stored["Body"].read() == dump_universe(parse_universe(EXAMPLE.read_bytes(), "x.csv"))

    assert main(["universe", "show", "--stage", "dev", "--timeframe", "15m"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"s3://{BUCKET}/universe/15m.json"
    assert shown[-1] == "8 assets, 7 enabled, 1 disabled (crypto 4, fx 4)"

    assert main(["universe", "show", "--stage", "dev", "--timeframe", "15m", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["uri"] == f"s3://{BUCKET}/universe/15m.json"
    assert document["assets"][0] == {"asset": "BTCUSD", "class": "crypto", "venue": "coinbase", "enabled": True}
    assert document["counts"] == {"assets": 8, "enabled": 7, "disabled": 1, "by_class": {"crypto": 4, "fx": 4}}


def test_put_again_prints_the_diff_and_dry_run_writes_nothing(s3: Any, tmp_path: Path, capsys: Capture) -> None:
    assert main(["universe", "put", "--stage", "dev", "--timeframe", "1h", str(EXAMPLE)]) == 0
    before = s3.get_object(Bucket=BUCKET, Key="universe/1h.json")["Body"].read()
    capsys.readouterr()
    # ETHUSD gone, ADAUSD added, LTCUSD enabled again, AUDUSD now equity
    new = tmp_path / "next.json"
    new.write_text(
        json.dumps(
            {
                "assets": [
                    {"asset": "BTCUSD", "class": "crypto"},
                    {"asset": "EURUSD", "class": "fx"},
                    {"asset": "GBPUSD", "class": "fx"},
                    {"asset": "SOLUSD", "class": "crypto"},
                    {"asset": "USDJPY", "class": "fx"},
                    {"asset": "AUDUSD", "class": "equity"},
                    {"asset": "LTCUSD", "class": "crypto", "enabled": True},
                    {"asset": "ADAUSD", "class": "crypto", "enabled": False},
                ]
            }
        )
    )
    argv = ["universe", "put", "--stage", "dev", "--timeframe", "1h", str(new)]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would write s3://{BUCKET}/universe/1h.json" in out and "nothing written (--dry-run)" in out
    assert "against the previous file: 1 added, 1 removed, 1 changed, 1 enabled-changed" in out
    assert s3.get_object(Bucket=BUCKET, Key="universe/1h.json")["Body"].read() == before

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "1 added, 1 removed, 1 changed, 1 enabled-changed" in out
    assert s3.get_object(Bucket=BUCKET, Key="universe/1h.json")["Body"].read() != before


def test_put_mends_a_file_that_no_longer_validates(s3: Any, capsys: Capture) -> None:
    s3.put_object(Bucket=BUCKET, Key="universe/1d.json", Body=b"[{broken")
    assert main(["universe", "put", "--stage", "dev", "--timeframe", "1d", str(EXAMPLE)]) == 0
    assert "the file it replaces did not validate" in capsys.readouterr().out
    assert main(["universe", "show", "--stage", "dev", "--timeframe", "1d"]) == 0


def test_show_without_a_file_says_the_parameter_is_used(s3: Any, capsys: Capture) -> None:
    assert main(["universe", "show", "--stage", "dev", "--timeframe", "1h"]) == 0
    assert "no universe file at" in capsys.readouterr().out
    assert main(["universe", "show", "--stage", "dev", "--timeframe", "1h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "uri": f"s3://{BUCKET}/universe/1h.json",
        "assets": None,
        "counts": None,
    }


def test_show_a_bad_file_in_s3_is_one_line_naming_it(s3: Any, capsys: Capture) -> None:
    s3.put_object(Bucket=BUCKET, Key="universe/1h.json", Body=b'[{"asset": "SOLUSD"}]')
    code = main(["universe", "show", "--stage", "dev", "--timeframe", "1h"])
    line = one_error_line(capsys, code)
    assert line == f"ffe universe: error: stage dev: s3://{BUCKET}/universe/1h.json: row 1 (item [0]), class: missing"


def test_bucket_flag_names_another_bucket(s3: Any, capsys: Capture) -> None:
    s3.create_bucket(Bucket="my-universes")
    argv = ["universe", "put", "--stage", "prod", "--timeframe", "1h", "--bucket", "my-universes", str(EXAMPLE)]
    assert main(argv) == 0
    assert "wrote s3://my-universes/universe/1h.json (prod, 1h)" in capsys.readouterr().out


def test_a_stage_not_deployed_is_one_line_naming_the_stage_and_what_to_do(s3: Any, capsys: Capture) -> None:
    code = main(["universe", "show", "--stage", "prod", "--timeframe", "1h"])
    line = one_error_line(capsys, code, "bucket ffe-prod-cycles-123456789012 does not exist; deploy the stage")
    assert line.startswith("ffe universe: error: stage prod: cannot read s3://ffe-prod-cycles-123456789012/")


def test_no_credentials_is_one_line_naming_the_stage(monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(["universe", "show", "--stage", "staging", "--timeframe", "1h"])
    one_error_line(capsys, code, "stage staging: cannot find its bucket (ffe-staging-cycles-<account id>)", "--bucket")


@pytest.mark.parametrize(
    "argv,words",
    [
        (["check"], "FILE: name the .csv or .json universe file"),
        (["check", "/no/such/file.csv"], "cannot read /no/such/file.csv: No such file or directory"),
        (["check", "/"], "cannot read /: Is a directory"),
        (["put", "--stage", "qa", "--timeframe", "1h", "f.csv"], "--stage qa: one of dev, staging, prod"),
        (["put", "--timeframe", "1h", "f.csv"], "--stage (missing): one of dev, staging, prod"),
        (["put", "--stage", "dev", "--timeframe", "2h", "f.csv"], "--timeframe 2h: one of 1m, 5m, 15m"),
        (["show", "--stage", "dev"], "--timeframe (missing)"),
        (["put", "--stage", "dev", "--timeframe", "1h"], "FILE: name the .csv or .json universe file"),
        (["show", "--stage", "dev", "--timeframe", "1h", "--bucket", "Bad_Bucket"], "not an S3 bucket name"),
    ],
)
def test_bad_flags_are_one_line_exit_2(argv: list[str], words: str, capsys: Capture) -> None:
    one_error_line(capsys, main(["universe", *argv]), words)
