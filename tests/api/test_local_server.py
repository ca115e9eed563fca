"""The local API server (HTTP -> API Gateway REST event -> handler), and a bounded schemathesis run over it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from ffe.api import app as api_app
from ffe.local.api_server import proxy_event, serve, start_in_thread
from functions.api.handler import lambda_handler
from tests.api.conftest import Seeded, every_byte_encoded, executions
from tests.conftest import FakeLambdaContext

SCHEMA_FILE = Path(api_app.__file__).with_name("openapi.json")


def fetch(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


@pytest.fixture
def local_api(state_machine: str) -> Iterator[str]:
    """The Api handler behind http://127.0.0.1:<free port>, with Step Functions in moto (no network)."""

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return lambda_handler(event, FakeLambdaContext())

    server, port = start_in_thread(invoke)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


# --- the server ---------------------------------------------------------------------------------------


def test_http_request_becomes_a_rest_proxy_event() -> None:
    # When a request with a repeated, percent-encoded query parameter and a JSON body arrives
    event = proxy_event(
        "POST", "/cycles/a%2Fb?asset=BTC%20USD&asset=ETHUSD&empty=", {"Content-Type": "application/json"}, b'{"a": 1}'
    )
    # Then it is an API Gateway REST (v1) proxy event: raw path, decoded proxy parameter and query, the body as text
    assert event["httpMethod"] == "POST" and event["path"] == "/cycles/a%2Fb"
    assert event["pathParameters"] == {"proxy": "cycles/a/b"}
    assert event["queryStringParameters"] == {"asset": "ETHUSD", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"asset": ["BTC USD", "ETHUSD"], "empty": [""]}
    assert event["headers"] == {"Content-Type": "application/json"} and event["body"] == '{"a": 1}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] and context["stage"] == "local" and context["httpMethod"] == "POST"
    assert context["path"] == "/local/cycles/a%2Fb" and context["identity"]["sourceIp"] == "127.0.0.1"
    assert proxy_event("GET", "/health", {}, b"")["queryStringParameters"] is None
    assert proxy_event("GET", "/", {}, b"")["pathParameters"] is None


def test_server_decodes_percent_encoded_path_segments_like_api_gateway(local_api: str, api_env: Seeded) -> None:
    # Given a decision and a cycle
    decision_id, cycle_id = str(api_env.decision_ids[0]), api_env.cycle_done
    # When a client sends their ids with every byte percent-encoded
    event = proxy_event("GET", f"/cycles/{every_byte_encoded(cycle_id)}", {}, b"")
    decision = fetch(f"{local_api}/decisions/{every_byte_encoded(decision_id)}")
    cycle = fetch(f"{local_api}/cycles/{every_byte_encoded(cycle_id)}")
    # Then the event carries the decoded segments, as API Gateway's does, and each id finds its resource
    assert event["pathParameters"] == {"proxy": f"cycles/{cycle_id}"}
    assert decision[0] == 200 and json.loads(decision[2])["id"] == int(decision_id)
    assert cycle[0] == 200 and json.loads(cycle[2])["cycle_id"] == cycle_id


@pytest.mark.parametrize(
    ("body", "mention"),
    [
        (b'{"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2019\xff"}', "not UTF-8"),
        (b"[" * 5000, "recursion limit exceeded"),
        (b'{"assets": ["BTCUSD"], "timeframe": "1h", "as_of": ' + b"1" * 5000 + b"}", "number out of range"),
    ],
    ids=["not-utf8", "deeply-nested", "5000-digit-integer"],
)
def test_server_answers_bad_bodies_with_a_400(local_api: str, state_machine: str, body: bytes, mention: str) -> None:
    status, headers, raw = fetch(f"{local_api}/cycles", "POST", body, {"Content-Type": "application/json"})
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert mention in json.loads(raw)["detail"] and executions(state_machine) == []


def test_server_answers_head_as_get_without_the_body(local_api: str) -> None:
    # When asking with HEAD
    get, head = fetch(f"{local_api}/health"), fetch(f"{local_api}/health", method="HEAD")
    # Then the status and content type are GET's, with no body
    assert get[0] == head[0] == 200 and get[2] and head[2] == b""
    assert head[1]["Content-Type"] == get[1]["Content-Type"] == "application/json"
    status, headers, body = fetch(f"{local_api}/decisions/999999", method="HEAD")
    assert (status, headers["Content-Type"], body) == (404, "application/problem+json", b"")


def test_server_only_binds_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve(lambda event: {}, host="0.0.0.0")  # the point of the test


def test_server_round_trips_status_headers_and_body(local_api: str) -> None:
    # When calling the API over HTTP
    status, headers, body = fetch(f"{local_api}/decisions?limit=2")
    # Then the handler's answer comes back as HTTP
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert len(json.loads(body)["items"]) == 2
    status, headers, body = fetch(f"{local_api}/decisions?limit=0&nope=1")
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert "query.nope" in json.loads(body)["detail"]
    status, headers, _ = fetch(f"{local_api}/cycles", method="DELETE")
    assert status == 405 and headers["Allow"] == "POST"


def test_server_posts_a_cycle(local_api: str) -> None:
    body = json.dumps({"assets": ["BTCUSD"], "timeframe": "1h", "as_of": "2019-06-15T12:01:00Z"}).encode()
    status, headers, raw = fetch(f"{local_api}/cycles", "POST", body, {"Content-Type": "application/json"})
    assert status == 202, raw
    cycle_id = json.loads(raw)["cycle_id"]
    assert headers["Location"] == f"/cycles/{cycle_id}"
    status, _, raw = fetch(f"{local_api}/cycles/{cycle_id}")
    assert status == 200 and json.loads(raw)["execution"]["status"] == "RUNNING"


def test_function_failure_is_a_502_problem(api_env: Seeded) -> None:
    def failing(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("Api failed: ImportError")

    server, port = start_in_thread(failing)
    try:
        status, headers, body = fetch(f"http://127.0.0.1:{port}/health")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 502 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["status"] == 502


# --- schemathesis -------------------------------------------------------------------------------------

schema = schemathesis.openapi.from_dict(json.loads(SCHEMA_FILE.read_text()))
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
]


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_api_fail(case: schemathesis.Case, local_api: str) -> None:
    # Given any request the schema allows, and many it does not (negative mode)
    # When it is sent to the API over HTTP
    response = case.call(base_url=local_api, timeout=10)
    # Then the API never answers 5xx, and every answer conforms to the schema (status, content type, body)
    assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body, response.text)
    case.validate_response(response, checks=CHECKS)
