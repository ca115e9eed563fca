"""`ffe secrets put|list` against moto's Secrets Manager: created where the template expects it, updated in place,
listed without values, every bad input refused in one line (exit 2), and no value ever printed."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto import mock_aws

from ffe.cli import main

REGION = "us-east-1"
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
TOKEN = "oanda-token-7f3e9a1c5b"
ACCOUNT = "101-004-1234567-001"


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


EC_PEM = pem(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def sm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def put(
    monkeypatch: pytest.MonkeyPatch, kind: str, document: Any, *extra: str, stage: str = "dev", raw: str | None = None
) -> int:
    """`ffe secrets put` with the document as JSON on stdin (not a terminal)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(raw if raw is not None else json.dumps(document)))
    return main(["secrets", "put", "--stage", stage, kind, "--region", REGION, *extra])


def stored(sm: Any, name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    return value


def test_put_creates_the_secret_where_the_template_expects_it_and_prints_the_override(
    sm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # When an Oanda secret is put for dev
    code = put(monkeypatch, "oanda", {"token": TOKEN, "account_id": ACCOUNT, "environment": "practice"})
    out = capsys.readouterr().out
    # Then ffe/dev/oanda holds the JSON the adapters read, tagged, and the last line is the override to deploy with
    assert code == 0
    described = sm.describe_secret(SecretId="ffe/dev/oanda")
    assert stored(sm, "ffe/dev/oanda") == {"token": TOKEN, "account_id": ACCOUNT, "environment": "practice"}
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {"project": "ffe", "stage": "dev"}
    assert out.splitlines()[-1] == f"OandaSecretArn={described['ARN']}"
    assert f"arn: {described['ARN']}" in out
    # and the ARN is one the template's parameter accepts
    pattern = re.search(r"OandaSecretArn:\n(?:\s+.*\n)*?\s+AllowedPattern: (\S+)", TEMPLATE.read_text())
    assert pattern is not None and re.fullmatch(pattern.group(1), described["ARN"])


def test_put_again_updates_the_same_secret_with_a_new_version(
    sm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert put(monkeypatch, "alpha-vantage", {"api_key": "first-key"}) == 0
    arn = sm.describe_secret(SecretId="ffe/dev/alpha-vantage")["ARN"]
    capsys.readouterr()
    # When it is put again
    assert put(monkeypatch, "alpha-vantage", {"api_key": "second-key"}) == 0
    out = capsys.readouterr().out
    # Then the same secret (same ARN) holds the new value, and the override names that ARN
    assert stored(sm, "ffe/dev/alpha-vantage") == {"api_key": "second-key"}
    assert out.startswith("updated ffe/dev/alpha-vantage")
    assert out.splitlines()[-1] == f"AlphaVantageSecretArn={arn}"
    assert len(sm.list_secret_version_ids(SecretId="ffe/dev/alpha-vantage")["Versions"]) == 2


def test_every_kind_is_written_under_its_stage_with_its_parameter(
    sm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = {
        "coinbase-trading": {"name": "organizations/o-1/apiKeys/k-2", "privateKey": EC_PEM},  # the CDP download
        "mlflow": {"MLFLOW_TRACKING_URI": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/ffe-prod"},
        "database": {"host": "db.example.com", "port": "6432", "username": "ffe", "password": "pw-9", "dbname": ""},
    }
    for kind, document in documents.items():
        capsys.readouterr()
        assert put(monkeypatch, kind, document, stage="prod") == 0
        parameter = capsys.readouterr().out.splitlines()[-1].split("=")[0]
        assert (
            parameter
            == {
                "coinbase-trading": "CoinbaseTradingSecretArn",
                "mlflow": "MlflowTrackingUriSecretArn",
                "database": "DatabaseSecretArn",
            }[kind]
        )
    assert stored(sm, "ffe/prod/coinbase-trading") == {
        "key_name": "organizations/o-1/apiKeys/k-2",
        "private_key": EC_PEM.strip(),
    }
    assert stored(sm, "ffe/prod/database") == {
        "host": "db.example.com",
        "port": 6432,
        "username": "ffe",
        "password": "pw-9",
    }
    # the cleanup job reads the tracking URI out of the secret's JSON
    from ffe.training.cleanup_job import tracking_uri_from_secret

    value = sm.get_secret_value(SecretId="ffe/prod/mlflow")["SecretString"]
    assert tracking_uri_from_secret(value) == documents["mlflow"]["MLFLOW_TRACKING_URI"]


def test_from_file_and_the_prompt_read_the_same_fields(
    sm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "oanda.json"
    source.write_text(json.dumps({"token": TOKEN, "account_id": ACCOUNT}))
    assert main(["secrets", "put", "--stage", "staging", "oanda", "--from-file", str(source), "--region", REGION]) == 0
    assert stored(sm, "ffe/staging/oanda") == {"token": TOKEN, "account_id": ACCOUNT}

    # On a terminal, each field is asked with getpass (nothing echoed); Enter leaves an optional field out
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter([TOKEN + "-2", ACCOUNT, ""])
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["secrets", "put", "--stage", "staging", "oanda", "--region", REGION]) == 0
    assert stored(sm, "ffe/staging/oanda") == {"token": TOKEN + "-2", "account_id": ACCOUNT}
    assert [p.split(" ")[1].rstrip(":") for p in prompts] == ["token", "account_id", "environment"]
    assert TOKEN not in capsys.readouterr().out


def test_list_shows_names_arns_and_dates_never_values(
    sm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert put(monkeypatch, "oanda", {"token": TOKEN, "account_id": ACCOUNT}) == 0
    assert put(monkeypatch, "alpha-vantage", {"api_key": "av-key-123"}) == 0
    assert put(monkeypatch, "alpha-vantage", {"api_key": "av-key-456"}, stage="prod") == 0
    arn = sm.describe_secret(SecretId="ffe/dev/oanda")["ARN"]
    capsys.readouterr()
    # When dev's secrets are listed
    assert main(["secrets", "list", "--stage", "dev", "--region", REGION]) == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    # Then dev's two are there with their parameters and ARNs, prod's is not, the missing kinds are named
    assert "2 secret(s) under ffe/dev/" in out
    assert "ffe/dev/oanda" in out and "OandaSecretArn" in out and arn in out
    assert "ffe/dev/alpha-vantage" in out and "ffe/prod/" not in out
    assert "not created: ffe/dev/coinbase-trading, ffe/dev/database, ffe/dev/mlflow" in out
    assert re.search(r"ffe/dev/oanda\s+OandaSecretArn\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out)
    for value in (TOKEN, ACCOUNT, "av-key-123"):
        assert value not in out


BAD_INPUTS = [
    # (kind, stdin, the one line it says)
    (
        "oanda",
        {"account_id": ACCOUNT},
        "oanda: missing field 'token'; it takes token, account_id (optional: environment)",
    ),
    ("oanda", {"token": TOKEN, "account_id": "  "}, "oanda: field 'account_id' is empty"),
    (
        "oanda",
        {"token": TOKEN, "account_id": ACCOUNT, "environment": "demo"},
        "oanda: field 'environment' must be one of practice, live",
    ),
    ("oanda", {"token": TOKEN, "account_id": ACCOUNT, "api_key": TOKEN}, "oanda: unknown field 'api_key'"),
    ("oanda", {"token": 12345, "account_id": ACCOUNT}, "oanda: field 'token' must be a string"),
    ("oanda", [TOKEN, ACCOUNT], "oanda: the input must be a JSON object of token, account_id"),
    ("alpha-vantage", f'{{"api_key": "{TOKEN}"', "alpha-vantage: the input is not JSON"),
    ("alpha-vantage", "", "alpha-vantage: stdin is empty"),
    ("alpha-vantage", {"api_key": ""}, "alpha-vantage: field 'api_key' is empty"),
    (
        "coinbase-trading",
        {"key_name": TOKEN, "private_key": EC_PEM},
        "coinbase-trading: field 'key_name' must be organizations/",
    ),
    (
        "coinbase-trading",
        {"key_name": "organizations/o/apiKeys/k", "private_key": TOKEN},
        "field 'private_key' must be an unencrypted PEM",
    ),
    (
        "coinbase-trading",
        {"key_name": "organizations/o/apiKeys/k", "private_key": pem(rsa.generate_private_key(65537, 2048))},
        "field 'private_key' must be an EC P-256 key",
    ),
    ("mlflow", {"MLFLOW_TRACKING_URI": f"ftp://{TOKEN}"}, "mlflow: field 'MLFLOW_TRACKING_URI' must be a SageMaker"),
    (
        "database",
        {"host": "h", "username": "u", "password": TOKEN, "port": "5432x"},
        "database: field 'port' must be a TCP port",
    ),
]


@pytest.mark.parametrize(("kind", "document", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    sm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str, document: Any, message: str
) -> None:
    raw = document if isinstance(document, str) else None
    code = put(monkeypatch, kind, document, raw=raw)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("ffe secrets: error: ")
    assert message in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert sm.list_secrets()["SecretList"] == []
    # no value of the input is ever echoed, not even in the error
    for value in (TOKEN, ACCOUNT, EC_PEM.splitlines()[1], "5432x", "demo", "ftp://"):
        assert value not in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["secrets", "put", "--stage", "qa", "oanda"],  # a stage the template does not have
        ["secrets", "put", "--stage", "dev", "binance"],  # a kind the template reads no ARN for
        ["secrets", "put", "oanda"],  # no stage
        ["secrets", "list"],
    ],
)
def test_unknown_stage_or_kind_is_refused_by_the_parser(
    sm: Any, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: ffe secrets" in capsys.readouterr().err
    assert sm.list_secrets()["SecretList"] == []


def test_a_missing_file_and_an_aws_refusal_are_one_line(
    sm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert main(["secrets", "put", "--stage", "dev", "oanda", "--from-file", str(missing), "--region", REGION]) == 2
    assert capsys.readouterr().err == f"ffe secrets: error: oanda: cannot read {missing}: No such file or directory\n"
    # A secret scheduled for deletion can be neither created nor updated: how to restore it, in one line
    assert put(monkeypatch, "alpha-vantage", {"api_key": "k-1"}) == 0
    sm.delete_secret(SecretId="ffe/dev/alpha-vantage", RecoveryWindowInDays=7)
    capsys.readouterr()
    assert put(monkeypatch, "alpha-vantage", {"api_key": "k-2"}) == 2
    err = capsys.readouterr().err
    assert err == (
        "ffe secrets: error: ffe/dev/alpha-vantage is scheduled for deletion: "
        "`aws secretsmanager restore-secret --secret-id ffe/dev/alpha-vantage`, then put it again\n"
    )
    assert "k-2" not in err


def test_no_value_reaches_stdout_or_stderr_on_any_path(
    sm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr3t-Value-Zq8"
    runs = [
        ("alpha-vantage", {"api_key": secret}),  # create
        ("alpha-vantage", {"api_key": secret + "b"}),  # update
        ("oanda", {"token": secret, "account_id": secret}),  # created too (an account id is not checked further)
        ("oanda", {"token": secret, "account_id": ACCOUNT, "environment": secret}),  # refused
        ("oanda", {"token": secret, secret: ACCOUNT}),  # refused: a value where a field's name goes
        ("database", {"host": "h", "username": "u", "password": secret, "port": secret}),  # refused
        ("mlflow", {"MLFLOW_TRACKING_URI": f"postgresql+psycopg://u:{secret}@h:5432/mlflow"}),
    ]
    for kind, document in runs:
        put(monkeypatch, kind, document)
    main(["secrets", "list", "--stage", "dev", "--region", REGION])
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    # an unknown field whose name is no field of any kind is not named either (it may be a misplaced value)
    assert "oanda: unknown field (its name not shown: it is no field of any kind)" in captured.err
