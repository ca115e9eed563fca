"""Shared fixtures: no network, a real PostgreSQL per test session, a fake Lambda context."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from ffe.adapters.reservations import PostgresReservations
from ffe.local.lambdas import cold_start
from ffe.local.postgres import EmbeddedPostgres

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
    """Every test starts like a cold Lambda container: no cached settings, store or provider."""
    cold_start()
    yield
    cold_start()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real PostgreSQL: DATABASE_URL if set, else a throwaway cluster for this session."""
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data") as pg:
        yield pg.url


def own_database(postgres: str, name: str) -> str:
    """URL of a fresh database ``name`` on the session's server (dropped first if an earlier run left it)."""
    admin = psycopg.conninfo.make_conninfo(postgres, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(postgres, dbname=name)


@pytest.fixture
def database_url(postgres: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session database, configured for the functions the way a local run does."""
    monkeypatch.setenv("DATABASE_URL", postgres)
    return postgres


@pytest.fixture
def db(postgres: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres, autocommit=True) as conn:
        yield conn


@pytest.fixture
def reservations(postgres: str) -> Iterator[PostgresReservations]:
    """The risk gate's order reservations and account locks on the session database (migrated on connect)."""
    book = PostgresReservations(postgres, ttl_seconds=1200)
    yield book
    book.close()


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
