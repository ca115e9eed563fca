"""One PostgreSQL connection per adapter and container, with the same behaviour for every adapter.

The decision store, its read side (the API), the order reservations, the paper broker and the equity marks
each hold a ``Database``: one connection, reused across warm invocations, used by one thread at a time.

- Lazy: the connection opens on first use, in autocommit mode; ``on_connect`` runs on every new connection
  (the adapters migrate the schema there, the read side makes its session read-only).
- Checked: before a reused connection is handed out its socket is polled (no round trip); when the server has
  hung up on it (failover, idle timeout, RDS Proxy recycling it), it is replaced once, before the caller's work
  runs. A network path that dies silently (no hang-up reaches the client) is not seen by the check: the work
  then fails as the adapter's ``unavailable`` error and the next use reconnects.
- Timeouts in one place: every session has the statement timeout (``DB_STATEMENT_TIMEOUT_MS``). An adapter
  that waits for locks passes a lock timeout, and its statement timeout is at least that long, so a lock
  wait ends by the lock timeout.
- TLS and credentials from the settings (``conninfo_from_settings``), built at every connect, never kept in a
  connection string: every connect after a ``Database``'s first reads the DB secret again past Powertools'
  cache, and a first connect whose login is refused (``refused_login``) reads it again and retries once, so a
  rotated password is picked up on reconnect (tests/integration/test_database_roles.py rotates one).
- Errors: a connection that cannot be opened, a connection lost during the work and a statement cut by a
  timeout are the adapter's ``unavailable`` error (a ``TransientError``: the state machine retries, the API
  answers 503). A connection that failed during the work is dropped, and the next use opens a new one.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast, overload

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import RowFactory, TupleRow

from ffe.domain.errors import TransientError
from ffe.observability import logger
from ffe.settings import DatabaseSettings

Row = TypeVar("Row")
# libpq conninfo, or a function building it (``fresh``: read the credentials again, past any cache)
Conninfo = str | Callable[[bool], str]
OnConnect = Callable[[psycopg.Connection[TupleRow]], object]
DEFAULT_STATEMENT_TIMEOUT_MS = DatabaseSettings.model_fields["db_statement_timeout_ms"].default
_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


class Database(Generic[Row]):
    """One lazily opened, checked connection (see the module's docstring); rows as ``row_factory`` makes them."""

    @overload
    def __init__(
        self: Database[TupleRow],
        conninfo: Conninfo,
        *,
        name: str = ...,
        statement_timeout_ms: int = ...,
        lock_timeout_ms: int | None = ...,
        session: Mapping[str, str] | None = ...,
        on_connect: OnConnect | None = ...,
        unavailable: type[TransientError] = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conninfo: Conninfo,
        *,
        row_factory: RowFactory[Row],
        name: str = ...,
        statement_timeout_ms: int = ...,
        lock_timeout_ms: int | None = ...,
        session: Mapping[str, str] | None = ...,
        on_connect: OnConnect | None = ...,
        unavailable: type[TransientError] = ...,
    ) -> None: ...

    def __init__(
        self,
        conninfo: Conninfo,
        *,
        row_factory: RowFactory[Any] | None = None,
        name: str = "database",
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        lock_timeout_ms: int | None = None,
        session: Mapping[str, str] | None = None,
        on_connect: OnConnect | None = None,
        unavailable: type[TransientError] = TransientError,
    ) -> None:
        """``name`` says whose database it is in errors ("cannot reach the <name>", "<name> unavailable");
        ``session``: more server settings for every session (``-c key=value``)."""
        self._conninfo = conninfo
        self._row_factory = row_factory
        self.name = name
        self.statement_timeout_ms = max(statement_timeout_ms, lock_timeout_ms or 0)
        gucs = {"statement_timeout": str(self.statement_timeout_ms)}
        if lock_timeout_ms is not None:
            gucs["lock_timeout"] = str(lock_timeout_ms)
        gucs.update(session or {})
        self._options = " ".join(f"-c {key}={value}" for key, value in gucs.items())
        self._on_connect = on_connect
        self._unavailable = unavailable
        self._conn: psycopg.Connection[Row] | None = None
        self._connects = 0  # attempts so far: every one after the first reads the credentials afresh
        self._lock = threading.Lock()

    @property
    def current(self) -> psycopg.Connection[Row] | None:
        """The open connection, if any (for inspection; use ``connection()`` to work on it)."""
        return self._conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        """The connection, checked, for this thread alone until the block ends."""
        with self._lock:
            conn = self._checked()
            try:
                yield conn
            except psycopg.errors.QueryCanceled as exc:
                self._drop_unless_idle(conn)
                raise self._unavailable(
                    f"{self.name} did not answer within the statement timeout ({self.statement_timeout_ms} ms)"
                ) from exc
            except _LOST as exc:
                self._drop_unless_idle(conn)
                raise self._unavailable(f"{self.name} unavailable: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Row]]:
        """``connection()`` inside one transaction (committed when the block ends, rolled back on an error)."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _checked(self) -> psycopg.Connection[Row]:
        conn = self._conn
        if conn is not None:
            if _answers(conn):
                return conn
            logger.info("database connection lost; reconnecting", extra={"database": self.name})
            self._drop()
        return self._open()

    def _open(self) -> psycopg.Connection[Row]:
        fresh = self._connects > 0
        self._connects += 1
        try:
            try:
                conn = self._connect(fresh)
            except psycopg.OperationalError as exc:
                if fresh or not callable(self._conninfo) or not refused_login(exc):
                    raise
                # a rotated password: the credentials read again past any cache, one more try
                logger.info("database login refused; reading the credentials again", extra={"database": self.name})
                conn = self._connect(fresh=True)
        except _LOST as exc:
            raise self._unavailable(f"cannot reach the {self.name}: {exc}") from exc
        try:
            if self._on_connect is not None:
                self._on_connect(conn)
        except _LOST as exc:
            conn.close()
            raise self._unavailable(f"cannot reach the {self.name}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if self._row_factory is not None:
            conn.row_factory = self._row_factory  # rows as the adapter reads them
        self._conn = cast("psycopg.Connection[Row]", conn)
        return self._conn

    def _connect(self, fresh: bool) -> psycopg.Connection[TupleRow]:
        conninfo = self._conninfo(fresh) if callable(self._conninfo) else self._conninfo
        return psycopg.connect(conninfo, autocommit=True, options=self._options)

    def _drop_unless_idle(self, conn: psycopg.Connection[Row]) -> None:
        """Keep a connection that is fine after the error (a timeout rolls back, the session lives on)."""
        if conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def refused_login(exc: psycopg.OperationalError) -> bool:
    """The server (or RDS Proxy) refused the credentials: a wrong or rotated password, or a role that may not log
    in; not a network failure. libpq gives no SQLSTATE for a failed connection, so its message tells."""
    if exc.sqlstate in ("28P01", "28000"):  # invalid_password, invalid_authorization_specification
        return True
    message = str(exc).lower()
    return "authentication failed" in message or "not permitted to log in" in message or "credentials" in message


def _answers(conn: psycopg.Connection[Any]) -> bool:
    """An idle, open connection the server has not hung up on since its last use.

    An idle session gets nothing from the server unless the server is ending it (a terminated backend, a
    restart or failover, a proxy closing an idle connection: an error message and/or end of file), and this
    process never LISTENs, so a readable socket means the connection is gone. A poll with no wait, not a
    round trip: the check costs a system call, not a network latency, on every use.
    """
    if conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, *_LOST):
        return False
    return not readable


def configured(settings: DatabaseSettings) -> Callable[[bool], str]:
    """The configured database's conninfo, built at every connect (``fresh``: the secret read again)."""
    return lambda fresh: conninfo_from_settings(settings, fresh=fresh)


def conninfo_from_settings(settings: DatabaseSettings, *, fresh: bool = False) -> str:
    """libpq conninfo from DATABASE_URL, or from the RDS-style JSON secret at DB_SECRET_ARN.

    The secret is read through Powertools (cached 5 min); ``fresh`` reads it again past the cache (a rotated
    password). TLS: DB_SSLMODE (and DB_SSLROOTCERT for ``verify-full``) when set; otherwise the URL's own
    ``sslmode`` (libpq's default when it has none), or the secret's ``sslmode``, ``require`` when it has none.
    """
    tls = {"sslmode": settings.db_sslmode, "sslrootcert": settings.db_sslrootcert}
    if settings.database_url:
        return make_conninfo(settings.database_url, connect_timeout=settings.db_connect_timeout_s, **tls)
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(str(settings.db_secret_arn), transform="json", max_age=300, force_fetch=fresh)
    return make_conninfo(
        host=settings.db_host or secret["host"],
        port=secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=secret.get("dbname", "ffe"),
        sslmode=settings.db_sslmode or secret.get("sslmode", "require"),  # TLS to Aurora unless told otherwise
        sslrootcert=settings.db_sslrootcert,
        connect_timeout=settings.db_connect_timeout_s,
    )
