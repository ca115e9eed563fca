"""A stage whose endpoint was never deployed (InferenceEndpointSource=none, or a stack that lost it): InferDecision
holds every fresh decision with inference_unavailable and counts it, which is what ffe-<stage>-inference-down
(iac/alarms.yaml) alarms on (tests/template/test_iam.py checks the alarm does not depend on the endpoint)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from functions.infer_decision import handler as infer_decision
from tests.unit.functions.test_handlers import regime_detected

NOT_FOUND = {"__type": "ValidationError", "message": "Endpoint ffe-dev-inference of account 123456789012 not found."}


class _NoSuchEndpoint(BaseHTTPRequestHandler):
    """What sagemaker-runtime answers InvokeEndpoint for an endpoint that does not exist."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(NOT_FOUND).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-ErrorType", "ValidationError")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("INFERENCE_ENDPOINT", "ffe-dev-inference")
    monkeypatch.setenv("INFERENCE_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()
    server.server_close()


def test_every_decision_holds_and_counts_for_the_inference_down_alarm(lambda_context, no_endpoint, capsys) -> None:
    data = regime_detected(lambda_context)
    capsys.readouterr()
    out = infer_decision.lambda_handler(data, lambda_context)
    assert (out["action"], out["confidence"], out["model_version"]) == ("HOLD", 1.0, "unavailable")
    assert out["reason"].startswith("inference_unavailable: ffe-dev-inference: ")
    assert "not found" in out["reason"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[0]["inference_unavailable"] == [1.0]
