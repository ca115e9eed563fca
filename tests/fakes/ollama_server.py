"""A fake Ollama server on loopback, speaking Ollama's wire format for the two routes the LLM voter uses.

Routes (https://github.com/ollama/ollama/blob/main/docs/api.md): ``GET /api/tags`` (the pulled models) and
``POST /api/chat``. The official ``ollama`` client sends ``{"model", "messages", "stream": false, "format",
"options", ...}`` as JSON and parses a non-streaming answer as one JSON object ``{"model", "created_at",
"message": {"role": "assistant", "content"}, "done": true, "done_reason": "stop", <durations>}``; errors are
``{"error": "..."}`` with Ollama's statuses: 404 for a model that is not pulled (``model "x" not found, try
pulling it first``), 400 for a bad request, 500 when a model fails to load (out of memory and friends).

Scriptable per test: ``server.script(model, reply, ...)`` queues replies for that model, consumed one per chat
request; when a model's queue is empty it answers ``server.default`` (a good answer). Every chat request body is
kept in ``server.requests``.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_ANSWER = {"action": "BUY", "confidence": 0.7, "reasoning": "uptrend with momentum; regime supports trend"}
REFUSAL = "I cannot give financial advice. Please consult a licensed financial advisor."
OOM = "model requires more system memory (5.2 GiB) than is available (1.1 GiB)"
LOAD_FAILED = "llama runner process has terminated: error loading model: failed to load model"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``content`` (the assistant's text), or an ``error`` with ``status``; ``delay`` first."""

    content: str = ""
    status: int = 200
    error: str | None = None
    delay: float = 0.0


def answer(**overrides: Any) -> Reply:
    """A well-formed answer (``GOOD_ANSWER`` with ``overrides``)."""
    return Reply(content=json.dumps({**GOOD_ANSWER, **overrides}))


MALFORMED = Reply(content='{"action": "BUY", "confidence": 0.7, "reasoning": "cut o')
PARTIAL = Reply(content='{"action": "SELL"}')
REFUSING = Reply(content=REFUSAL)


def slow(seconds: float) -> Reply:
    return Reply(content=json.dumps(GOOD_ANSWER), delay=seconds)


def not_found(model: str) -> Reply:
    return Reply(status=404, error=f'model "{model}" not found, try pulling it first')


def out_of_memory() -> Reply:
    return Reply(status=500, error=OOM)


class FakeOllama(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, models: tuple[str, ...] = ("llama3.2:3b-instruct-q4_0", "llama3.2:1b-instruct-q4_0")) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.models = list(models)
        self.default = answer()
        self.requests: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, model: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[model].extend(replies)

    def next_reply(self, model: str) -> Reply:
        with self._lock:
            queue = self._scripts[model]
            if queue:
                return queue.popleft()
        if model not in self.models:
            return not_found(model)
        return self.default

    def chats_for(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("model") == model]


class _Handler(BaseHTTPRequestHandler):
    server: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            self._json(404, {"error": "404 page not found"})
            return
        models = [
            {
                "name": m,
                "model": m,
                "modified_at": "2024-10-01T12:00:00.000000000Z",
                "size": 1_321_098_329 if "1b" in m else 2_019_393_189,
                "digest": "0" * 64,
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "llama",
                    "families": ["llama"],
                    "parameter_size": "1.2B" if "1b" in m else "3.2B",
                    "quantization_level": "Q4_0",
                },
            }
            for m in self.server.models
        ]
        self._json(200, {"models": models})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self._json(400, {"error": f"invalid character: {exc}"})
            return
        if self.path != "/api/chat":
            self._json(404, {"error": "404 page not found"})
            return
        self.server.requests.append(body)
        model = str(body.get("model", ""))
        if not model:
            self._json(400, {"error": "model is required"})
            return
        reply = self.server.next_reply(model)
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        if reply.error is not None:
            self._json(reply.status, {"error": reply.error})
            return
        done = {
            "model": model,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": reply.content},
            "done_reason": "stop",
            "done": True,
            "total_duration": 412_000_000,
            "load_duration": 12_000_000,
            "prompt_eval_count": 180,
            "prompt_eval_duration": 90_000_000,
            "eval_count": 40,
            "eval_duration": 300_000_000,
        }
        if body.get("stream", True):  # Ollama streams unless told not to: one NDJSON line is enough here
            self._send(200, (json.dumps(done) + "\n").encode(), "application/x-ndjson")
        else:
            self._json(200, done)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass


@contextmanager
def running(models: tuple[str, ...] | None = None) -> Iterator[FakeOllama]:
    """A fake Ollama serving in a thread for the duration of the block."""
    server = FakeOllama() if models is None else FakeOllama(models)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
