"""What every test needs: no network, the environment, a cold container, a fake Lambda context.

Imports stay light (no psycopg, no moto): tests/unit runs without either. The PostgreSQL fixtures live in
tests/database.py, imported by the conftest.py of the folders that need them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ffe import containers

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "FFE")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# A developer's own Ollama must never vote in tests: the LLM voter finds nothing here (loopback port 9 is closed).
os.environ["OLLAMA_HOST"] = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never leave the machine: only unix sockets and loopback are allowed."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if self.family == socket.AF_UNIX or (isinstance(address, tuple) and str(address[0]) in ("127.0.0.1", "::1")):
            return real_connect(self, address)  # type: ignore[arg-type]
        raise ConnectionRefusedError(f"network access in tests is blocked: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def _fresh_containers() -> Iterator[None]:
    """Every test starts like a cold Lambda container: nothing registered in ffe.containers is kept."""
    containers.reset()
    yield
    containers.reset()


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def cycle_id() -> str:
    return f"test-{uuid.uuid4()}"
