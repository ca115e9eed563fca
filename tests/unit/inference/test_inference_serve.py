"""The HTTP shell: /ping, /invocations, the sagemaker-runtime path (real boto3 client) and trace propagation."""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Iterator

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from ffe.adapters.inference import get_inference
from ffe.contracts import InferenceRequest, InferenceResponse
from ffe.settings import InferenceSettings
from gpu_inference.predictor import Predictor
from gpu_inference.serve import InferenceServer, _BadRequest, _parse, serve_in_thread, settle
from gpu_inference.tracing import get_tracer, make_provider


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def predictor(exporter: InMemorySpanExporter) -> Predictor:
    return Predictor.load("bundled", device="cpu", tracer=get_tracer(make_provider(exporter)))


@pytest.fixture
def server(predictor: Predictor) -> Iterator[InferenceServer]:
    srv, stop = serve_in_thread(predictor)
    yield srv
    stop()


@pytest.fixture
def body(make_instance) -> bytes:
    return InferenceRequest(instances=[make_instance()], llm=False).model_dump_json().encode()


def test_ping_503_until_the_predictor_is_ready_then_200(predictor: Predictor) -> None:
    srv, stop = serve_in_thread(None)
    try:
        assert httpx.get(f"{srv.url}/ping").status_code == 503
        srv.predictor = predictor
        assert httpx.get(f"{srv.url}/ping").status_code == 200
    finally:
        stop()


def test_invocations_answers_an_inference_response(server: InferenceServer, body: bytes) -> None:
    r = httpx.post(f"{server.url}/invocations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    response = InferenceResponse.model_validate_json(r.content)
    assert response.device == "cpu" and response.predictions[0].rule == "rl_only_llm_skipped"


def test_invocations_before_ready_is_503(body: bytes) -> None:
    srv, stop = serve_in_thread(None)
    try:
        r = httpx.post(f"{srv.url}/invocations", content=body, headers={"Content-Type": "application/json"})
    finally:
        stop()
    assert r.status_code == 503 and r.json()["error"] == "ModelNotReady"
    assert r.json()["message"] == "the models are still loading"


def test_a_failed_model_load_is_503_saying_why(body: bytes) -> None:
    srv, stop = serve_in_thread(None)
    srv.load_error = "ModelLoadError: cannot load the model from /opt/ml/model: no manifest.json"
    try:
        ping = httpx.get(f"{srv.url}/ping")
        r = httpx.post(f"{srv.url}/invocations", content=body, headers={"Content-Type": "application/json"})
    finally:
        stop()
    assert ping.status_code == 503 and ping.json() == {"status": "failed", "error": srv.load_error}
    assert r.status_code == 503 and r.json()["message"] == f"the models failed to load: {srv.load_error}"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "needle"),
    [
        (b"{not json", "application/json", 400, "not JSON"),
        (b"{}", "text/csv", 415, "Content-Type must be application/json"),
        (b'{"instances": []}', "application/json", 422, "instances"),
        (b'{"instances": [{"asset": "BTCUSD"}]}', "application/json", 422, "instances.0.timeframe"),
    ],
    ids=["bad-json", "content-type", "empty-instances", "missing-fields"],
)
def test_invocations_bad_requests_are_4xx_naming_the_problem(
    server: InferenceServer, content: bytes, content_type: str, status: int, needle: str
) -> None:
    r = httpx.post(f"{server.url}/invocations", content=content, headers={"Content-Type": content_type})
    assert r.status_code == status
    assert needle in r.json()["message"]


def test_unknown_route_is_404(server: InferenceServer) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 404
    assert httpx.post(f"{server.url}/predict", content=b"{}").status_code == 404


def test_boto3_sagemaker_runtime_client_invokes_the_local_server(
    server: InferenceServer, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a real sagemaker-runtime client pointed at loopback, with dummy credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=server.url,
        config=Config(retries={"max_attempts": 1}),
    )
    # When it invokes an endpoint
    out = client.invoke_endpoint(
        EndpointName="ffe-dev", Body=body, ContentType="application/json", Accept="application/json"
    )
    # Then the body is the InferenceResponse
    assert out["ContentType"] == "application/json"
    response = InferenceResponse.model_validate_json(out["Body"].read())
    assert response.predictions[0].voters[0].voter == "rl"
    # And a validation error surfaces as a ClientError naming it
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(EndpointName="ffe-dev", Body=b'{"instances": []}', ContentType="application/json")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "instances" in caught.value.response["Error"]["Message"]


def test_traceparent_header_continues_the_callers_trace(
    server: InferenceServer, body: bytes, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"Content-Type": "application/json", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    assert httpx.post(f"{server.url}/invocations", content=body, headers=headers).status_code == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"invocations", "rl_voter"} <= spans.keys()
    assert {f"{s.context.trace_id:032x}" for s in spans.values()} == {trace_id}
    assert (
        spans["rl_voter"].parent is not None
        and spans["rl_voter"].parent.span_id == spans["invocations"].context.span_id
    )
    caller = spans["invocations"].parent
    assert caller is not None and f"{caller.span_id:016x}" == "00f067aa0ba902b7"


def test_xray_trace_header_continues_the_step_functions_trace(
    server: InferenceServer, body: bytes, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    headers = {
        "Content-Type": "application/json",
        "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    assert httpx.post(f"{server.url}/invocations", content=body, headers=headers).status_code == 200
    span = next(s for s in exporter.get_finished_spans() if s.name == "invocations")
    assert f"{span.context.trace_id:032x}" == "5759e988bd862e3fe1be46a994272793"


def test_model_load_span_is_recorded() -> None:
    exporter = InMemorySpanExporter()
    Predictor.load("bundled", device="cpu", tracer=get_tracer(make_provider(exporter)))
    (span,) = exporter.get_finished_spans()
    assert span.name == "model_load" and span.attributes is not None and span.attributes["device"] == "cpu"
    assert json.dumps(dict(span.attributes))  # plain attributes


def test_infer_decisions_xray_trace_reaches_the_container_through_custom_attributes(
    server: InferenceServer, body: bytes, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given InferDecision's own client (ffe.adapters.inference) pointed at the server, and a Lambda X-Ray trace
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    client = get_inference(InferenceSettings(inference_endpoint="ffe-dev-inference", inference_endpoint_url=server.url))
    xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    exporter.clear()
    # When it infers (boto3 sends the trace as X-Amzn-SageMaker-Custom-Attributes, as SageMaker forwards it)
    client.infer(InferenceRequest.model_validate_json(body), trace_header=xray)
    # Then the container's spans belong to the Lambda's trace, under its segment
    span = next(s for s in exporter.get_finished_spans() if s.name == "invocations")
    assert f"{span.context.trace_id:032x}" == "5759e988bd862e3fe1be46a994272793"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "53995c3f42cd8ad8"


def test_w3c_traceparent_in_custom_attributes_is_continued(
    server: InferenceServer, body: bytes, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "Content-Type": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": f"traceparent=00-{trace_id}-00f067aa0ba902b7-01",
    }
    assert httpx.post(f"{server.url}/invocations", content=body, headers=headers).status_code == 200
    span = next(s for s in exporter.get_finished_spans() if s.name == "invocations")
    assert f"{span.context.trace_id:032x}" == trace_id


def test_settle_moves_the_loaded_models_out_of_the_cyclic_collector(predictor: Predictor) -> None:
    try:
        settle()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def _old_parse(raw: bytes) -> InferenceRequest:
    """How the server read a body before it used pydantic's JSON parser."""
    return InferenceRequest.model_validate(json.loads(raw))


def test_a_request_reads_the_same_through_the_json_parser(make_instance) -> None:
    # Given a batch as InferDecision sends it, and its floats written every way JSON allows
    batch = InferenceRequest(instances=[make_instance(offset=i) for i in range(8)], llm=False)
    written = [batch.model_dump_json().encode(), json.dumps(batch.model_dump(mode="json")).encode()]
    rng = random.Random(16)
    odd = [rng.random() * 10 ** rng.randint(-30, 0) for _ in range(500)] + [0.0, -0.0, 5e-324, 1e-7, 0.1 + 0.2]
    tricky = batch.model_dump(mode="json")
    tricky["instances"][0]["features"] = {f"f{i}": v for i, v in enumerate(odd)}
    tricky["instances"][0]["scores"] = {"a": 0.5, "a ": -0.25}
    written.append(json.dumps(tricky).encode())
    written.append(json.dumps(tricky).replace('"a ": -0.25', '"a ": -0.25, "a": 1').encode())  # a repeated key
    written.append(json.dumps(tricky).replace("e-05", "E-5").encode())
    for raw in written:
        # Then the server reads exactly what json.loads + model_validate read, to the last bit of every float
        assert _parse(raw).model_dump_json() == _old_parse(raw).model_dump_json()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b'{"instances": []}',
        b'{"instances": [{"asset": "BTCUSD"}]}',
        b'{"instances": "x"} trailing',
        b'{"instances": [1.]}',
        b'{"llm": "maybe\n"}',
        b"\xff\xfe\x00",
        b"[]",
        b"null",
    ],
)
def test_a_refused_body_is_answered_as_before(raw: bytes) -> None:
    expected: tuple[int, str, list[dict[str, str]] | None]
    try:
        _old_parse(raw)
    except json.JSONDecodeError as exc:
        expected = (400, f"the body is not JSON: {exc}", None)
    except UnicodeDecodeError as exc:
        expected = (400, f"the body is not JSON: {exc}", None)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        details = [{"loc": ".".join(map(str, e["loc"])), "msg": e["msg"], "type": e["type"]} for e in errors]
        summary = "; ".join(f"{d['loc'] or 'body'}: {d['msg']}" for d in details[:5])
        expected = (422, f"invalid InferenceRequest: {summary}", details)
    with pytest.raises(_BadRequest) as refused:
        _parse(raw)
    assert (refused.value.status, str(refused.value), refused.value.details) == expected


def test_a_body_only_json_loads_reads_is_still_served(server: InferenceServer, body: bytes) -> None:
    plain = httpx.post(f"{server.url}/invocations", content=body, headers={"Content-Type": "application/json"})
    for other in (b"\xef\xbb\xbf" + body, body.decode().encode("utf-16")):  # a byte-order mark; UTF-16
        r = httpx.post(f"{server.url}/invocations", content=other, headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        assert [p["action"] for p in r.json()["predictions"]] == [p["action"] for p in plain.json()["predictions"]]
