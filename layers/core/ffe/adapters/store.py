"""The decision store on PostgreSQL (Aurora-compatible) with psycopg 3.

One connection per container, reused across warm invocations and re-opened when broken; the schema is
migrated on first connect. Writes are idempotent on each table's natural key, so a retried task never
doubles a row. A database that cannot be reached is a ``TransientError`` (the state machine retries).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from ffe.contracts import DecisionRecord, FailureRecord
from ffe.domain.errors import TransientError
from ffe.observability import logger
from ffe.settings import DatabaseSettings, get_settings
from ffe.store.migrate import migrate


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    created: bool


class DecisionStore(Protocol):
    def record_decision(self, record: DecisionRecord) -> Stored: ...

    def record_failure(self, record: FailureRecord, message: str) -> Stored: ...


_INSERT_DECISION = """
INSERT INTO decisions (cycle_id, execution_id, asset, timeframe, as_of, bar_time, action, confidence, stale,
                       reason, data_age_seconds, staleness_threshold_seconds, model, model_version, signals,
                       source, input_sha256)
VALUES (%(cycle_id)s, %(execution_id)s, %(asset)s, %(timeframe)s, %(as_of)s, %(bar_time)s, %(action)s,
        %(confidence)s, %(stale)s, %(reason)s, %(data_age_seconds)s, %(staleness_threshold_seconds)s, %(model)s,
        %(model_version)s, %(signals)s, %(source)s, %(input_sha256)s)
ON CONFLICT ON CONSTRAINT decisions_natural_key DO NOTHING
RETURNING id
"""
_FIND_DECISION = """
SELECT id, input_sha256 FROM decisions
WHERE cycle_id = %(cycle_id)s AND asset = %(asset)s AND bar_time IS NOT DISTINCT FROM %(bar_time)s
"""
_INSERT_FAILURE = """
INSERT INTO failures (cycle_id, execution_id, asset, timeframe, as_of, error_class, message, cause)
VALUES (%(cycle_id)s, %(execution_id)s, %(asset)s, %(timeframe)s, %(as_of)s, %(error)s, %(message)s, %(cause)s)
ON CONFLICT ON CONSTRAINT failures_natural_key DO NOTHING
RETURNING id
"""
_FIND_FAILURE = """
SELECT id FROM failures
WHERE cycle_id IS NOT DISTINCT FROM %(cycle_id)s AND asset IS NOT DISTINCT FROM %(asset)s
"""


class PostgresDecisionStore:
    def __init__(self, conninfo: str, statement_timeout_ms: int = 5000) -> None:
        self._conninfo = conninfo
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def record_decision(self, record: DecisionRecord) -> Stored:
        params = record.model_dump(mode="python")
        params.update(
            signals=Jsonb(params["signals"]),
            source=Jsonb(params["source"]),
            action=record.action.value,
            timeframe=record.timeframe.value,
        )
        stored, existing = self._write(_INSERT_DECISION, _FIND_DECISION, params)
        if existing is not None and existing[1] != record.input_sha256:
            # Same cycle, asset and bar but other input: the first write wins; say so loudly.
            logger.warning("decision already stored with different input", extra={"decision_id": stored.id})
        return stored

    def record_failure(self, record: FailureRecord, message: str) -> Stored:
        params = record.model_dump(mode="python")
        params.update(message=message, cause=Jsonb(_json_or_text(record.cause)))
        stored, _ = self._write(_INSERT_FAILURE, _FIND_FAILURE, params)
        return stored

    def _write(self, insert: str, find: str, params: dict[str, Any]) -> tuple[Stored, tuple[Any, ...] | None]:
        """Insert, or read back the row an earlier attempt stored (returned as the second item)."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    inserted = conn.execute(insert, params).fetchone()  # type: ignore[arg-type]
                    if inserted is not None:
                        return Stored(inserted[0], created=True), None
                    existing = conn.execute(find, params).fetchone()  # type: ignore[arg-type]
            except psycopg.OperationalError as exc:
                self._drop()
                raise TransientError(f"database unavailable while recording: {exc}") from exc
        if existing is None:  # deleted between the two statements: vanishingly rare, and safe to retry
            raise TransientError("conflicting row vanished before it could be read back")
        return Stored(existing[0], created=False), tuple(existing)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                conn = psycopg.connect(
                    self._conninfo, autocommit=True, options=f"-c statement_timeout={self._statement_timeout_ms}"
                )
                applied = migrate(conn)
            except psycopg.OperationalError as exc:
                raise TransientError(f"cannot reach the decision store: {exc}") from exc
            if applied:
                logger.info("schema migrated", extra={"versions": applied})
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _json_or_text(cause: str) -> Any:
    try:
        return json.loads(cause) if cause else None
    except ValueError:
        return {"text": cause}


def conninfo_from_settings(settings: DatabaseSettings) -> str:
    """libpq conninfo from DATABASE_URL, or from the RDS-style JSON secret (cached 5 min)."""
    if settings.database_url:
        return make_conninfo(settings.database_url, connect_timeout=settings.db_connect_timeout_s)
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(str(settings.db_secret_arn), transform="json", max_age=300)
    return make_conninfo(
        host=secret["host"],
        port=secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=secret.get("dbname", "ffe"),
        sslmode=secret.get("sslmode", "require"),  # TLS to Aurora unless the secret says otherwise
        connect_timeout=settings.db_connect_timeout_s,
    )


@cache
def get_store() -> PostgresDecisionStore:
    """The container's store, built once so a warm start reuses its connection."""
    settings = get_settings(DatabaseSettings)
    return PostgresDecisionStore(conninfo_from_settings(settings), settings.db_statement_timeout_ms)
