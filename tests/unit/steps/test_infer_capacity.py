"""InferDecision against an endpoint that has no capacity, speaking SageMaker's real error shapes: each asset
holds at once with the reason, and after BREAKER_FAIL_MAX such answers the rest of the cycle holds uncalled."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ffe.domain.models import Action
from ffe.domain.strategies import StrategyParams
from ffe.steps.infer import infer_decision
from tests.unit.steps.test_infer_decision import Runtime, client, decide_input, prediction


def sagemaker_error(code: str, status: int, message: str, **extra: Any) -> ClientError:
    """What botocore raises for an InvokeEndpoint error answer (the parsed JSON body and its metadata)."""
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "req-1"},
        **extra,
    }
    return ClientError(response, "InvokeEndpoint")


CAPACITY = [
    (sagemaker_error("ModelNotReadyException", 429, "Model is not ready yet"), "ModelNotReadyException, HTTP 429"),
    (sagemaker_error("ThrottlingException", 400, "Rate exceeded"), "ThrottlingException, HTTP 400"),
    (sagemaker_error("ServiceUnavailable", 503, "Service Unavailable"), "ServiceUnavailable, HTTP 503"),
    (
        sagemaker_error(
            "ModelError", 424, "Received server error (503) from primary", OriginalStatusCode=503, LogStreamArn="x"
        ),
        "ModelError, HTTP 503",
    ),
]


@pytest.mark.parametrize(("answer", "why"), CAPACITY, ids=["not-ready", "throttled", "503", "container-503"])
def test_no_capacity_is_a_hold_that_says_so(answer: ClientError, why: str) -> None:
    runtime = Runtime(answer)
    record = infer_decision(decide_input(), client(runtime), StrategyParams(), 0.15)
    assert record.action is Action.HOLD and record.model_version == "unavailable" and len(runtime.calls) == 1
    assert record.reason.startswith(f"inference_unavailable: ffe-dev-inference: cannot take requests now ({why}): ")


def test_other_endpoint_errors_keep_their_reason() -> None:
    answer = sagemaker_error("ValidationError", 400, "Endpoint ffe-dev-inference not found")
    record = infer_decision(decide_input(), client(Runtime(answer)), StrategyParams(), 0.15)
    assert record.reason == (
        "inference_unavailable: ffe-dev-inference: ClientError: An error occurred (ValidationError) when calling "
        "the InvokeEndpoint operation: Endpoint ffe-dev-inference not found"
    )


def test_after_fail_max_capacity_answers_the_rest_of_the_cycle_holds_without_calling() -> None:
    runtime = Runtime(sagemaker_error("ThrottlingException", 400, "Rate exceeded"))
    endpoint = client(runtime, fail_max=3)
    reasons = [infer_decision(decide_input(), endpoint, StrategyParams(), 0.15).reason for _ in range(10)]
    assert len(runtime.calls) == 3
    assert all("cannot take requests now (ThrottlingException" in r for r in reasons[:3])
    assert all("circuit breaker for ffe-dev-inference is open" in r for r in reasons[3:])
    runtime.answer = prediction()  # capacity back: the breaker still holds until it half-opens
    assert "circuit breaker" in infer_decision(decide_input(), endpoint, StrategyParams(), 0.15).reason
