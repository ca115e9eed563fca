"""The SageMaker inference endpoint as InferDecision sees it: one InvokeEndpoint call, a short timeout,
behind a circuit breaker shared across containers (the market-data breakers' table and storage).

Any failure here is an ``InferenceUnavailableError``: the step turns it into a HOLD that says why, never
into a decision the models did not make. An endpoint that answers it has no capacity (``_no_capacity``:
ModelNotReadyException, throttling, 429/503) holds saying "cannot take requests now"; those answers come at
once (no SDK retries) and count towards the breaker, so after ``BREAKER_FAIL_MAX`` of them the rest of the
cycle holds without calling (tests/unit/steps/test_infer_capacity.py).
"""

from __future__ import annotations

import json
from typing import Any

import pybreaker
from pydantic import ValidationError

from ffe.adapters.breaker import DynamoDBBreakerStorage, make_breaker
from ffe.containers import container_cached
from ffe.contracts import InferenceRequest, InferenceResponse
from ffe.domain.ports import InferenceClient
from ffe.settings import InferenceSettings

TRACE_ATTRIBUTE = "X-Amzn-Trace-Id"  # the Lambda's X-Ray header, carried in CustomAttributes


class InferenceUnavailableError(Exception):
    """The endpoint could not give a valid answer (timeout, error, open breaker, malformed response)."""


class SageMakerInference:
    """``sagemaker-runtime`` InvokeEndpoint with the stage's endpoint and variant."""

    def __init__(self, runtime: Any, endpoint: str, variant: str | None, breaker: pybreaker.CircuitBreaker) -> None:
        self._runtime = runtime
        self._endpoint = endpoint
        self._variant = variant
        self._breaker = breaker

    def infer(self, request: InferenceRequest, trace_header: str | None = None) -> InferenceResponse:
        """The endpoint's predictions, validated.

        Raises:
            InferenceUnavailableError: naming the endpoint and what went wrong.
        """
        try:
            return self._breaker.call(self._invoke, request, trace_header)
        except pybreaker.CircuitBreakerError as exc:
            raise InferenceUnavailableError(f"circuit breaker for {self._endpoint} is open: {exc}") from exc
        except InferenceUnavailableError:
            raise
        except Exception as exc:
            capacity = _no_capacity(exc)
            if capacity is not None:  # answered at once: the breaker counts it, the cycle holds without waiting
                raise InferenceUnavailableError(f"{self._endpoint}: cannot take requests now {capacity}") from exc
            raise InferenceUnavailableError(f"{self._endpoint}: {type(exc).__name__}: {exc}") from exc

    def _invoke(self, request: InferenceRequest, trace_header: str | None) -> InferenceResponse:
        kwargs: dict[str, Any] = {
            "EndpointName": self._endpoint,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": request.model_dump_json().encode(),
        }
        if self._variant:
            kwargs["TargetVariant"] = self._variant
        if trace_header:  # SageMaker hands CustomAttributes to the container as X-Amzn-SageMaker-Custom-Attributes
            kwargs["CustomAttributes"] = f"{TRACE_ATTRIBUTE}={trace_header}"
        body = self._runtime.invoke_endpoint(**kwargs)["Body"].read()
        try:
            response = InferenceResponse.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            raise InferenceUnavailableError(
                f"{self._endpoint} answered something that is not a prediction: {exc}"
            ) from exc
        if len(response.predictions) != len(request.instances):
            raise InferenceUnavailableError(
                f"{self._endpoint} answered {len(response.predictions)} predictions for {len(request.instances)}"
            )
        return response


# What SageMaker answers when the endpoint cannot take the request now (scaling, a cold or overloaded instance):
# InvokeEndpoint's ModelNotReadyException, throttling, and any 429/503, also a container's passed on by ModelError.
_CAPACITY_CODES = frozenset({"ModelNotReadyException", "ModelNotReady", "ThrottlingException", "ServiceUnavailable"})
_CAPACITY_STATUSES = frozenset({429, 503})


def _no_capacity(exc: Exception) -> str | None:
    """``"(<code>, HTTP <status>): <message>"`` when ``exc`` is a botocore error saying the endpoint has no capacity."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error", {})
    code = str(error.get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    original = response.get("OriginalStatusCode")  # ModelError: what the container answered
    if code in _CAPACITY_CODES or status in _CAPACITY_STATUSES or original in _CAPACITY_STATUSES:
        shown = original if original in _CAPACITY_STATUSES else status
        return f"({code or 'HTTP error'}, HTTP {shown}): {error.get('Message', '')}"
    return None


@container_cached
def get_inference(settings: InferenceSettings) -> InferenceClient:
    """One client per container: botocore with the short timeouts and no SDK retries (the breaker and the
    state machine own retrying), the breaker in DynamoDB when a table is configured.

    Where the client sends its calls, first that is set wins: INFERENCE_ENDPOINT_URL (``InferenceEndpointUrl``:
    a VPC endpoint's DNS name, ``ffe run``'s loopback server), then ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``, then
    ``AWS_ENDPOINT_URL`` (botocore reads those two itself when no ``endpoint_url`` is passed; None passes none),
    then the Region's public endpoint. docs/localstack.md#endpoints; tests/integration/test_endpoint_overrides.py.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.inference_connect_timeout_s,
        read_timeout=settings.inference_timeout_s,
        retries={"total_max_attempts": 1},
    )
    runtime = boto3.client("sagemaker-runtime", config=config, endpoint_url=settings.inference_endpoint_url or None)
    name = f"inference:{settings.inference_endpoint}"
    storage = None
    if settings.breaker_table:
        storage = DynamoDBBreakerStorage(boto3.resource("dynamodb").Table(settings.breaker_table), name)
    breaker = make_breaker(name, storage, settings.breaker_fail_max, settings.breaker_reset_timeout_s)
    return SageMakerInference(runtime, settings.inference_endpoint, settings.inference_variant, breaker)
