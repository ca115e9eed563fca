"""One connection behaviour for every adapter on the database (ffe.adapters.database), on a real PostgreSQL.

Every user of the helper (the decision store, its read side, the order reservations, the paper broker, the
equity marks) survives the server dropping its connection, logs in again with a rotated password, and runs
under the statement timeout.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import tuple_row

from ffe.adapters import brokers_factory
from ffe.adapters.database import Database, conninfo_from_settings
from ffe.adapters.equity_marks import PostgresEquityMarks
from ffe.adapters.paper_broker import PaperBroker
from ffe.adapters.queries import DatabaseUnavailableError, DecisionQueries, get_queries
from ffe.adapters.reservations import PostgresReservations
from ffe.adapters.store import PostgresDecisionStore, get_store
from ffe.domain.errors import TransientError
from ffe.settings import DatabaseSettings, RiskSettings, get_settings
from tests.database import own_database

AS_OF = datetime(2024, 3, 4, 12, tzinfo=UTC)


@dataclass
class User:
    """One adapter on the database, reduced to what these tests need: one call that uses the connection."""

    name: str
    database: Database[Any]
    use: Callable[[], object]


def users(conninfo: Any, statement_timeout_ms: int = 5000) -> list[User]:
    store = PostgresDecisionStore(conninfo, statement_timeout_ms)
    queries = DecisionQueries(conninfo, statement_timeout_ms)
    reservations = PostgresReservations(conninfo, ttl_seconds=1200, statement_timeout_ms=statement_timeout_ms)
    broker = PaperBroker(
        conninfo, f"paper-{uuid.uuid4()}", clock=lambda: AS_OF, statement_timeout_ms=statement_timeout_ms
    )
    memory = PostgresEquityMarks(conninfo, statement_timeout_ms)
    return from_adapters(store, queries, reservations, broker, memory)


def from_adapters(
    store: PostgresDecisionStore,
    queries: DecisionQueries,
    reservations: PostgresReservations,
    broker: PaperBroker,
    memory: PostgresEquityMarks,
) -> list[User]:
    def reserve() -> object:
        with reservations.account(f"acct-{uuid.uuid4()}") as book:
            return book.reserved()

    return [
        User("store", store.database, lambda: store.close_cycle(f"none-{uuid.uuid4()}", "FAILED")),
        User("queries", queries.database, queries.ping),
        User("reservations", reservations.database, reserve),
        User("paper broker", broker.database, broker.balance),
        User(
            "equity marks", memory.database, lambda: memory.marks(f"acct-{uuid.uuid4()}", date(2024, 3, 4), Decimal(1))
        ),
    ]


def backend_pid(user: User) -> int:
    conn = user.database.current
    assert conn is not None, f"{user.name} has no connection"
    return int(conn.info.backend_pid)


def terminate(admin: psycopg.Connection[Any], *pids: int) -> None:
    """Drop these sessions as a failover or an idle timeout would, and wait until they are gone."""
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def close(all_users: list[User]) -> None:
    for user in all_users:
        user.database.close()


def test_a_dropped_connection_is_replaced_once_for_every_user(postgres: str, db: psycopg.Connection[Any]) -> None:
    # Given every adapter has used its connection once
    everyone = users(postgres)
    for user in everyone:
        user.use()
    pids = {user.name: backend_pid(user) for user in everyone}
    assert len(set(pids.values())) == len(everyone)  # one connection each
    # When the server drops all of them
    terminate(db, *pids.values())
    # Then each one's next call succeeds on a new connection
    for user in everyone:
        user.use()
        assert backend_pid(user) != pids[user.name], user.name
    close(everyone)


def test_a_connection_lost_during_the_work_is_the_adapters_transient_error_and_the_next_use_reconnects(
    postgres: str,
) -> None:
    database = Database(postgres, name="test database")
    with pytest.raises(TransientError, match="test database unavailable"), database.connection() as conn:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert database.current is None  # dropped
    with database.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    database.close()


def test_an_unreachable_database_is_the_adapters_unavailable_error(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@/ffe?host={tmp_path}&port=1&connect_timeout=1"
    read_side = DecisionQueries(nowhere)
    with pytest.raises(DatabaseUnavailableError, match="cannot reach the decision store"):
        read_side.ping()
    with pytest.raises(TransientError, match="cannot reach the order reservations"):
        users(nowhere)[2].use()


def test_the_statement_timeout_applies_to_every_user(postgres: str) -> None:
    everyone = users(postgres, statement_timeout_ms=1234)
    for user in everyone:
        user.use()
        conn = user.database.current
        assert conn is not None
        timeout = conn.cursor(row_factory=tuple_row).execute("SHOW statement_timeout").fetchone()
        expected = "10s" if user.name == "reservations" else "1234ms"  # at least the lock timeout (10 s)
        assert timeout == (expected,), user.name
    close(everyone)


def test_a_statement_past_the_timeout_is_unavailable_and_keeps_the_connection(postgres: str) -> None:
    database = Database(postgres, name="test database", statement_timeout_ms=100)
    with pytest.raises(TransientError, match="did not answer within the statement timeout"):
        with database.connection() as conn:
            conn.execute("SELECT pg_sleep(1)")
    kept = database.current
    assert kept is not None and not kept.closed  # the session is fine: only the statement was cancelled
    with database.connection() as conn:
        assert conn is kept
    database.close()


def test_credentials_are_read_afresh_on_every_connect_after_the_first(postgres: str) -> None:
    asked: list[bool] = []

    def conninfo(fresh: bool) -> str:
        asked.append(fresh)
        return postgres

    database = Database(conninfo)
    with database.connection():
        pass
    with database.connection():  # reused: no new connect
        pass
    database.close()
    with database.connection():
        pass
    database.close()
    assert asked == [False, True]


# --- a rotated DB secret ------------------------------------------------------------------------------------


@pytest.fixture
def password_role(postgres: str, db: psycopg.Connection[Any]) -> Iterator[tuple[str, str]]:
    """A role that must log in with a password (scram), owning a fresh database: (role, database URL)."""
    row = db.execute("SHOW hba_file").fetchone()
    assert row is not None
    hba = Path(str(row[0]))
    try:
        original = hba.read_text()
        hba.write_text(original)
    except OSError:
        pytest.skip(f"cannot edit {hba}: this test needs the server's pg_hba.conf (an embedded cluster)")
    role = f"rotating_{uuid.uuid4().hex[:8]}"
    url = own_database(postgres, f"ffe_{role}")
    # CREATEROLE: its adapters migrate the fresh database on connect (offline), and 0009 grants it ffe_migrate, as
    # Aurora's master user has it
    db.execute(f"CREATE ROLE {role} LOGIN CREATEROLE PASSWORD 'first-password'")
    db.execute(f'ALTER DATABASE "ffe_{role}" OWNER TO {role}')
    hba.write_text(f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n{original}")
    db.execute("SELECT pg_reload_conf()")
    try:
        _wait_for_password_auth(url, role)
        yield role, url
    finally:
        hba.write_text(original)
        db.execute("SELECT pg_reload_conf()")
        db.execute(f'DROP DATABASE IF EXISTS "ffe_{role}" WITH (FORCE)')
        db.execute(f"DROP ROLE IF EXISTS {role}")


def _wait_for_password_auth(url: str, role: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(make_conninfo(url, user=role, password="wrong")).close()
        except psycopg.OperationalError:
            return  # the reloaded rules ask for the password
        if time.monotonic() > deadline:
            pytest.fail("the server did not start asking for passwords")
        time.sleep(0.05)


def test_a_rotated_password_is_picked_up_on_reconnect_by_every_user(
    password_role: tuple[str, str], db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    role, url = password_role
    where = conninfo_to_dict(url)
    secret = {
        "host": where["host"],
        "port": int(where.get("port") or 5432),
        "username": role,
        "password": "first-password",
        "dbname": where["dbname"],
        "sslmode": "disable",  # unix socket
    }
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name=f"ffe/test/{role}", SecretString=json.dumps(secret))["ARN"]
        monkeypatch.setenv("DB_SECRET_ARN", arn)
        # Given every adapter of a warm container connected with the secret's password
        settings = get_settings(RiskSettings)
        broker = brokers_factory.get_broker(settings, AS_OF)
        assert isinstance(broker, PaperBroker)
        everyone = from_adapters(
            get_store(),
            get_queries(),
            brokers_factory.get_reservations(settings),
            broker,
            brokers_factory.get_equity_memory(settings),
        )
        for user in everyone:
            user.use()
        pids = [backend_pid(user) for user in everyone]
        assert {row[0] for row in db.execute("SELECT usename FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))} == {
            role
        }
        # When the password rotates (the secret first, as Secrets Manager's rotation does) and the server drops
        # the sessions (while Powertools still holds the old secret in its cache)
        db.execute(f"ALTER ROLE {role} PASSWORD 'second-password'")
        secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({**secret, "password": "second-password"}))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(conninfo_from_settings(get_settings(DatabaseSettings))).close()  # the cached secret
        terminate(db, *pids)
        # Then every adapter logs in again with the new password
        for user, pid in zip(everyone, pids, strict=True):
            user.use()
            assert backend_pid(user) != pid, user.name
        close(everyone)
