"""The SageMaker serving shell: ``GET /ping`` and ``POST /invocations`` over the predictor, nothing else.

SageMaker's bring-your-own-container contract: listen on ``SAGEMAKER_BIND_TO_PORT`` (8080), answer ``/ping``
200 once the models are loaded (503 before), and ``/invocations`` with the model's answer. The version loaded at
start serves instances that name none; ``FFE_MODEL_STORE`` (a folder or ``s3://bucket/prefix``) serves the others. The
``POST /endpoints/{name}/invocations`` route is sagemaker-runtime's InvokeEndpoint path, so a boto3
``sagemaker-runtime`` client with ``endpoint_url`` pointed here works in the offline runtime.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import trace
from pydantic import ValidationError

from ffe.contracts import InferenceRequest
from gpu_inference.predictor import Predictor
from gpu_inference.tracing import get_tracer, parent_context

DEFAULT_PORT = 8080
MAX_BODY = 6 * 1024 * 1024  # SageMaker's real-time payload limit
_INVOKE_PATH = re.compile(r"^/endpoints/[A-Za-z0-9](?:-*[A-Za-z0-9]){0,62}/invocations$")

logger = logging.getLogger(__name__)


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, predictor: Predictor | None, host: str, port: int, tracer: trace.Tracer | None = None) -> None:
        super().__init__((host, port), _Handler)
        self.predictor = predictor
        self.load_error: str | None = None  # why the models could not load; /ping stays 503 and says it
        self.tracer = tracer or (predictor.tracer if predictor is not None else get_tracer())

    @property
    def ready(self) -> bool:
        return self.predictor is not None and self.predictor.ready

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _BadRequest(Exception):
    def __init__(self, status: int, error: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.details = status, error, details


class _Handler(BaseHTTPRequestHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"
    # An answer goes out in one write (_send), but a long one in several segments: with Nagle on, the last would
    # wait for the keep-alive client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http %s", format % args)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/ping":
            self._json(404, {"error": "NotFound", "message": f"no route GET {self.path}"})
            return
        if self.server.ready:
            self._json(200, {"status": "ready"})
        elif self.server.load_error:
            self._json(503, {"status": "failed", "error": self.server.load_error})
        else:
            self._json(503, {"status": "loading"})

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        if path != "/invocations" and not _INVOKE_PATH.match(path):
            self._drain()
            self._json(404, {"error": "NotFound", "message": f"no route POST {self.path}"})
            return
        tracer = self.server.tracer
        error: _BadRequest | None = None
        # The span ends before the answer is written: whoever reads the answer can already see the span.
        with tracer.start_as_current_span("invocations", context=parent_context(dict(self.headers.items()))) as span:
            try:
                request = self._request()
                predictor = self.server.predictor
                if predictor is None or not predictor.ready:
                    why = self.server.load_error
                    message = f"the models failed to load: {why}" if why else "the models are still loading"
                    raise _BadRequest(503, "ModelNotReady", message)
                span.set_attribute("instances", len(request.instances))
                span.set_attribute("llm", request.llm)
                response = predictor.predict(request)
            except _BadRequest as exc:
                span.set_attribute("http.status_code", exc.status)
                failure: dict[str, Any] = {"error": exc.error, "message": str(exc)}
                if exc.details is not None:
                    failure["details"] = exc.details
                error = exc
            else:
                span.set_attribute("http.status_code", 200)
        if error is not None:
            self._json(error.status, failure, {"x-amzn-ErrorType": error.error})
            return
        self._send(
            200,
            response.model_dump_json().encode(),
            "application/json",
            {"x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        )

    def _request(self) -> InferenceRequest:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as exc:
            raise _BadRequest(400, "ValidationError", "Content-Length is not a number") from exc
        if length > MAX_BODY:
            raise _BadRequest(413, "ValidationError", f"the body is over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise _BadRequest(
                415, "UnsupportedMediaType", f"Content-Type must be application/json, got {content_type!r}"
            )
        return _parse(raw)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        """The status line, the headers and the body in one write: ``end_headers()`` would write the headers on
        their own, and the client would wake up for them, then again for the body."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        pending: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]  # what end_headers() would flush
        pending += (b"\r\n", body)
        self.flush_headers()


def _parse(raw: bytes) -> InferenceRequest:
    """The body as an InferenceRequest, by pydantic's JSON parser: at batch 64 a third of the time of ``json.loads``
    then ``model_validate`` (bench/bench_inference.py), and the same request: its floats are parsed to the same
    bits (tests/unit/inference/test_inference_serve.py). A body it refuses goes through ``json.loads`` and
    ``model_validate`` as before, so every refusal is answered as it was, and a body only ``json.loads`` reads
    (UTF-16, a byte-order mark, an escaped lone surrogate) is still served."""
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError:
        pass  # answered below, as before
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _BadRequest(400, "ValidationError", f"the body is not JSON: {exc}") from exc
    try:
        return InferenceRequest.model_validate(payload)
    except ValidationError as exc:
        details = [
            {"loc": ".".join(map(str, e["loc"])), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{d['loc'] or 'body'}: {d['msg']}" for d in details[:5])
        raise _BadRequest(422, "ValidationError", f"invalid InferenceRequest: {summary}", details) from exc


def make_server(
    predictor: Predictor | None, host: str = "127.0.0.1", port: int = DEFAULT_PORT, tracer: trace.Tracer | None = None
) -> InferenceServer:
    """A server bound to ``host:port`` (port 0: any free one); ``predictor`` None until the models load."""
    return InferenceServer(predictor, host, port, tracer)


def serve_in_thread(
    predictor: Predictor | None, host: str = "127.0.0.1", port: int = 0, tracer: trace.Tracer | None = None
) -> tuple[InferenceServer, Callable[[], None]]:
    """Start a server in a daemon thread; returns it and a ``stop()`` function."""
    server = make_server(predictor, host, port, tracer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        # A keep-alive handler thread still holds the server. Drop the models here: freed by a daemon thread
        # while the interpreter exits, a torch module aborts the process ("terminate called ...").
        server.predictor = None
        gc.collect()

    return server, stop


def settle() -> None:
    """After the models load: collect once, then freeze what is alive (torch, the policy, the libraries) out of
    the cyclic collector. Otherwise a full collection walks all of it during a request: batch-64 parsing took
    55 ms instead of 2 ms on one request in twenty (bench/bench_inference.py)."""
    gc.collect()
    gc.freeze()


def main() -> None:  # pragma: no cover - the container's entry point
    """Bind first (so /ping answers 503 while loading), then load the models and serve."""
    from gpu_inference.gpu import detect
    from gpu_inference.llm import LlmVoter, timeout_from_env
    from gpu_inference.tracing import make_provider

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    tracer = get_tracer(make_provider())
    host = os.environ.get("FFE_BIND_HOST", "0.0.0.0")  # noqa: S104 - SageMaker reaches the container from outside
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT))
    server = make_server(None, host, port, tracer)
    info, plan = detect()
    llm = None
    if os.environ.get("FFE_LLM", "on") != "off":
        llm = LlmVoter(plan, timeout_s=timeout_from_env())
    model_dir = os.environ.get("SM_MODEL_DIR", os.environ.get("FFE_MODEL_DIR", "/opt/ml/model"))
    if not os.path.exists(os.path.join(model_dir, "manifest.json")):
        model_dir = "bundled"  # no model artifact attached: serve the champion shipped in the ffe package

    def load() -> None:
        try:
            store = os.environ.get("FFE_MODEL_STORE") or None  # the other versions instances name, on demand
            server.predictor = Predictor.load(model_dir, llm=llm, tracer=tracer, store=store)
        except Exception as exc:  # /ping stays 503, so SageMaker fails the deployment with this in the logs
            server.load_error = f"{type(exc).__name__}: {exc}"
            logger.exception("model load failed", extra={"model_dir": model_dir})
            return
        settle()
        logger.info(
            "models loaded", extra={"model_dir": model_dir, "version": server.predictor.version, "gpu": info.name}
        )

    threading.Thread(target=load, daemon=True).start()
    logger.info("serving", extra={"host": host, "port": port})
    server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
