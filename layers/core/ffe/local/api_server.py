"""The API on loopback: each HTTP request becomes an API Gateway REST (v1) proxy event for the Api function.

``serve(lambda event: cloud.invoke("api", event))`` puts the deployed function (running in-process in
moto) behind ``http://127.0.0.1:8080``, so curl, a browser or schemathesis can talk to it the way they
would talk to API Gateway. Like API Gateway's REST proxy integration (``/{proxy+}``, any method), the
path is passed as sent (still percent-encoded), ``pathParameters.proxy`` is the path after the first
``/`` with each segment percent-decoded, and the query string is decoded. The resolver routes on the
path and decodes the segments it matches itself (``ffe.api.resolver``). Only loopback addresses can be
bound: this server has no authentication.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

STAGE = "local"
LOOPBACK = ("127.0.0.1", "localhost")
_log = logging.getLogger(__name__)


def proxy_event(
    method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The API Gateway REST proxy event for one request (``target`` is the request line's path + query)."""
    parts = urlsplit(target)
    multi_query = parse_qs(parts.query, keep_blank_values=True)
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers.items():
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    text: str | None
    if not body:
        text, encoded = None, False
    else:
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:  # binary: API Gateway hands it over base64-encoded
            text, encoded = base64.b64encode(body).decode(), True
    path = parts.path or "/"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": unquote(path[1:])} if path != "/" else None,
        "stageVariables": None,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": STAGE,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "resourcePath": "/{proxy+}",
            "protocol": "HTTP/1.1",
            "accountId": "123456789012",
            "apiId": "local",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": single_headers.get("User-Agent", "")},
        },
    }


class _ProxyHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        event = proxy_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
        try:
            result = self.server.invoke(event)
        except Exception as exc:  # the function itself failed: what API Gateway calls a 502
            _log.exception("Api function failed")
            result = _bad_gateway(event["path"], exc)
        self._reply(result, head=self.command == "HEAD")

    def __getattr__(self, name: str) -> Any:
        # Every method goes to the function (as with an ANY proxy resource); the resolver answers 404/405.
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._proxy
        raise AttributeError(name)

    def _reply(self, result: dict[str, Any], head: bool) -> None:
        body: Any = result.get("body") or ""
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        self.send_response(int(result.get("statusCode", 502)))
        headers: dict[str, list[str]] = {k: [str(v)] for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = [str(v) for v in values]
        for name, values in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                for value in values:
                    self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        _log.debug("%s " + format, self.client_address[0], *args)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], invoke: Invoke) -> None:
        self.invoke = invoke
        super().__init__(address, _ProxyHandler)


def serve(cloud_invoke: Invoke, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """Bind the API to ``host:port`` (loopback only) and return the server; call ``serve_forever()`` on it."""
    if host not in LOOPBACK:
        raise ValueError(f"the local API binds loopback only ({', '.join(LOOPBACK)}), not {host!r}")
    return ApiServer((host, port), cloud_invoke)


def start_in_thread(cloud_invoke: Invoke, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, int]:
    """Serve in a daemon thread; returns the server (``shutdown()`` + ``server_close()`` it) and its port."""
    server = serve(cloud_invoke, host, port)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="ffe-local-api", daemon=True
    ).start()
    return server, int(server.server_address[1])


def _bad_gateway(path: str, exc: Exception) -> dict[str, Any]:
    problem = {
        "type": "urn:ffe:problem:bad-gateway",
        "title": "Bad gateway",
        "status": 502,
        "detail": f"the Api function failed: {type(exc).__name__}",
        "instance": path,
    }
    return {
        "statusCode": 502,
        "headers": {"Content-Type": "application/problem+json"},
        "body": json.dumps(problem),
        "isBase64Encoded": False,
    }
