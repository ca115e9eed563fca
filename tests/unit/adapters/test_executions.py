"""The Step Functions client the API and the cycle lock share: what it answers, and how it classifies failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from ffe.adapters import executions
from ffe.adapters.executions import StepFunctionsUnavailableError
from ffe.domain.errors import TransientError

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ffe-dev-decision-cycle"
ARN = "arn:aws:states:us-east-1:123456789012:execution:ffe-dev-decision-cycle:api-1"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr(executions, "client", lambda: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_execution_arn_is_the_machine_s_with_the_execution_name() -> None:
    assert executions.execution_arn(MACHINE, "api-1") == ARN


def test_start_execution_returns_the_execution_arn(stub: Stubber) -> None:
    stub.add_response(
        "start_execution",
        {"executionArn": ARN, "startDate": datetime(2019, 6, 15, tzinfo=UTC)},
        {"stateMachineArn": MACHINE, "name": "api-1", "input": '{"a": 1}'},
    )
    assert executions.start_execution(MACHINE, "api-1", '{"a": 1}') == ARN


def test_describe_execution_reads_status_dates_and_input(stub: Stubber) -> None:
    started = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)
    stub.add_response(
        "describe_execution",
        {
            "executionArn": ARN,
            "stateMachineArn": MACHINE,
            "status": "FAILED",
            "startDate": started,
            "input": json.dumps({"assets": ["BTCUSD"]}),
            "error": "States.Timeout",
            "cause": "too slow",
        },
    )
    found = executions.describe_execution(ARN)
    assert found is not None
    assert (found.arn, found.status, found.started_at, found.stopped_at) == (ARN, "FAILED", started, None)
    assert (found.error, found.cause, found.input) == ("States.Timeout", "too slow", {"assets": ["BTCUSD"]})


@pytest.mark.parametrize("code", ["ExecutionDoesNotExist", "InvalidArn"])
def test_an_execution_step_functions_does_not_know_is_none(stub: Stubber, code: str) -> None:
    stub.add_client_error("describe_execution", service_error_code=code, http_status_code=400)
    assert executions.describe_execution(ARN) is None
    stub.add_client_error("describe_execution", service_error_code=code, http_status_code=400)
    assert executions.execution_status(ARN) is None


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalServerError", 500)])
def test_throttling_and_5xx_are_unavailable(stub: Stubber, code: str, status: int) -> None:
    stub.add_client_error("start_execution", service_error_code=code, http_status_code=status)
    with pytest.raises(StepFunctionsUnavailableError):
        executions.start_execution(MACHINE, "api-1", "{}")


def test_an_unreachable_endpoint_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable:
        def describe_execution(self, **kwargs: object) -> None:
            raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")

    monkeypatch.setattr(executions, "client", Unreachable)
    with pytest.raises(StepFunctionsUnavailableError):
        executions.describe_execution(ARN)


def test_any_other_refusal_is_raised_as_is_and_the_cycle_lock_reads_it_as_unreadable(stub: Stubber) -> None:
    stub.add_client_error("describe_execution", service_error_code="AccessDeniedException", http_status_code=400)
    with pytest.raises(ClientError):
        executions.describe_execution(ARN)
    stub.add_client_error("describe_execution", service_error_code="AccessDeniedException", http_status_code=400)
    with pytest.raises(TransientError, match="cannot read execution"):
        executions.execution_status(ARN)
