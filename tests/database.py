"""PostgreSQL fixtures for the folders whose tests need a real database (their conftest.py imports them).

tests/unit never imports this module: the unit tests run without psycopg or the embedded server. The
functions are named ``fixture_<name>`` (the fixture is ``<name>``), so a conftest that imports them can still
take ``postgres`` as a parameter of its own fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from ffe.adapters.reservations import PostgresReservations
from ffe.local.postgres import EmbeddedPostgres
from ffe.local.runner import LocalState

_SERVER = pytest.StashKey[EmbeddedPostgres]()


@pytest.fixture(scope="session", name="postgres")
def fixture_postgres(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a real PostgreSQL: DATABASE_URL if set, else a throwaway cluster for this session.

    Each folder's conftest.py registers this fixture anew, so the server lives on the session's config: one
    per test process, whichever folder asks first, stopped when the session ends.
    """
    server = request.config.stash.get(_SERVER, None)
    if server is None:
        server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data").start()
        request.config.add_cleanup(server.stop)
        request.config.stash[_SERVER] = server
    return server.url


def own_database(postgres: str, name: str) -> str:
    """URL of a fresh database ``name`` on the session's server (dropped first if an earlier run left it)."""
    admin = psycopg.conninfo.make_conninfo(postgres, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(postgres, dbname=name)


@pytest.fixture(name="database_url")
def fixture_database_url(postgres: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session database, configured for the functions the way a local run does."""
    monkeypatch.setenv("DATABASE_URL", postgres)
    return postgres


@pytest.fixture(name="db")
def fixture_db(postgres: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres, autocommit=True) as conn:
        yield conn


@pytest.fixture(name="reservations")
def fixture_reservations(postgres: str) -> Iterator[PostgresReservations]:
    """The risk gate's order reservations and account locks on the session database (migrated on connect)."""
    book = PostgresReservations(postgres, ttl_seconds=1200)
    yield book
    book.close()


class StateOnDatabase(LocalState):
    """The CLI's state dir (``.ffe/``), with a test database standing in for the embedded cluster."""

    url: str

    def __init__(self, root: Path, url: str) -> None:
        super().__init__(root)
        object.__setattr__(self, "url", url)
        self.pgdata.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def postgres(self) -> Iterator[Any]:  # type: ignore[override]
        yield SimpleNamespace(url=self.url)
