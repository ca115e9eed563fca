"""`ffe preflight --stage`: the stage's Preflight function invoked, its report printed as the local one is."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from ffe.cli import main

REPORT = {
    "checked_at": "2026-12-03T06:30:00Z",
    "healthy": False,
    "providers": [
        {"provider": "coinbase", "status": "ok", "latency_ms": 120.0, "hint": "", "message": ""},
        {"provider": "oanda", "status": "auth_failed", "latency_ms": 80.0, "hint": "OandaSecretArn", "message": "401"},
    ],
    "brokers": [],
}


class FakeLambda:
    def __init__(self, payload: Any, function_error: str | None = None) -> None:
        self.payload, self.function_error = payload, function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **call: Any) -> dict[str, Any]:
        self.calls.append(call)
        response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.payload).encode())}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    client = FakeLambda(REPORT)

    class Session:
        def __init__(self, region_name: str | None = None) -> None:
            assert region_name == "eu-west-1"

        def client(self, service: str) -> FakeLambda:
            assert service == "lambda"
            return client

    monkeypatch.setattr("boto3.Session", Session)
    return client


def test_invokes_the_stages_preflight_function_and_prints_its_report(
    fake: FakeLambda, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["preflight", "--stage", "staging", "--region", "eu-west-1"])
    out = capsys.readouterr().out
    assert fake.calls == [
        {"FunctionName": "ffe-staging-preflight", "InvocationType": "RequestResponse", "Payload": b"{}"}
    ]
    assert code == 1  # not healthy: oanda's credentials were refused
    assert "NOT healthy" in out and "auth_failed" in out and "coinbase" in out


def test_a_function_error_is_one_line_naming_the_log_group(
    fake: FakeLambda, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.payload, fake.function_error = (
        {"errorType": "Runtime.ImportModuleError", "errorMessage": "no module"},
        "Unhandled",
    )
    assert main(["preflight", "--stage", "dev", "--region", "eu-west-1"]) == 2
    assert capsys.readouterr().err == (
        "ffe preflight: error: ffe-dev-preflight failed: Runtime.ImportModuleError: no module "
        "(its log group: /aws/lambda/ffe-dev-preflight)\n"
    )


def test_an_answer_that_is_no_report_is_refused(fake: FakeLambda, capsys: pytest.CaptureFixture[str]) -> None:
    fake.payload = {"statusCode": 200}
    assert main(["preflight", "--stage", "dev", "--region", "eu-west-1"]) == 2
    assert "ffe-dev-preflight answered without a pre-flight report" in capsys.readouterr().err
