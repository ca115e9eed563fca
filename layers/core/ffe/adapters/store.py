"""The decision store on PostgreSQL (Aurora-compatible) with psycopg 3.

One connection per container (``ffe.adapters.database``: reused across warm invocations, replaced when the
server dropped it); offline, the schema is migrated on every new connection (in AWS only MigrateDatabase
migrates: ``ffe.store.migrate.migrate_offline``). Writes are idempotent on each table's
natural key, so a retried task never doubles a row. A database that cannot be reached is a
``TransientError`` (the state machine retries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ffe.adapters.database import Conninfo, Database, configured
from ffe.containers import container_cached
from ffe.contracts import CycleHeader, DecisionRecord, ExecuteOrderInput, FailureRecord
from ffe.domain.cycles import Ended, Running, judge_running_cycle
from ffe.domain.errors import TransientError
from ffe.domain.portfolio import OrderRequest, OrderResult
from ffe.domain.ports import ExecutionStatus, Opened, Stored
from ffe.observability import logger
from ffe.settings import DatabaseSettings, get_settings
from ffe.store.decision_rows import (
    BACKFILL_INSERT,
    BACKFILL_TABLE,
    COPY_BACKFILL,
    COPY_DECISIONS,
    FIND_DECISION,
    INSERT_DECISION,
    INSERT_RISK_EVENTS,
    decision_row,
    risk_params,
)
from ffe.store.migrate import migrate_offline

BACKFILL_COPY_ROWS = 5000  # one COPY of as many rows takes well under a second (bench/bench_store.py)
_INSERT_FAILURE = """
INSERT INTO failures (cycle_id, execution_id, stage, asset, timeframe, as_of, error_class, message, cause)
VALUES (%(cycle_id)s, %(execution_id)s, %(stage)s, %(asset)s, %(timeframe)s, %(as_of)s, %(error)s, %(message)s,
        %(cause)s)
ON CONFLICT ON CONSTRAINT failures_natural_key DO NOTHING
RETURNING id
"""
_FIND_FAILURE = """
SELECT id FROM failures
WHERE cycle_id IS NOT DISTINCT FROM %(cycle_id)s AND asset IS NOT DISTINCT FROM %(asset)s
"""
_INSERT_EXECUTION = """
INSERT INTO executions (decision_id, as_of, venue, mode, client_order_id, venue_order_id, side, quantity, price,
                        status, detail)
VALUES (%(decision_id)s, %(as_of)s, %(venue)s, %(mode)s, %(client_order_id)s, %(venue_order_id)s, %(side)s,
        %(quantity)s, %(price)s, %(status)s, %(detail)s)
ON CONFLICT (client_order_id) DO NOTHING
RETURNING id
"""
_OPEN_CYCLE = """
INSERT INTO cycles (id, execution_arn, stage, timeframe, as_of, assets, status, reason, finished_at)
VALUES (%(id)s, %(execution_arn)s, %(stage)s, %(timeframe)s, %(as_of)s, %(assets)s, %(status)s, %(reason)s,
        CASE WHEN %(status)s = 'RUNNING' THEN NULL ELSE now() END)
"""
_RUNNING_CYCLES = """
SELECT id, execution_arn, started_at, extract(epoch FROM now() - started_at) AS age FROM cycles
WHERE stage = %(stage)s AND timeframe IS NOT DISTINCT FROM %(timeframe)s AND status = 'RUNNING' AND id <> %(id)s
"""
_CLOSE_CYCLE = """
WITH closed AS (
    UPDATE cycles SET status = %(status)s, finished_at = now(), reason = %(reason)s
    WHERE id = %(id)s AND status = 'RUNNING' RETURNING id
), released AS (  -- what the cycle's gates reserved and it never placed stops holding headroom
    UPDATE order_reservations SET status = 'RELEASED', note = 'its cycle ended before it was placed', updated_at = now()
    WHERE cycle_id = %(id)s AND status = 'RESERVED'
)
SELECT id FROM closed
"""


class PostgresDecisionStore:
    def __init__(self, conninfo: Conninfo, statement_timeout_ms: int = 5000, stage: str = "local") -> None:
        self._stage = stage
        self._partitions: set[tuple[int, int]] = set()  # months whose partition this connection has ensured
        self.database = Database(
            conninfo, name="decision store", statement_timeout_ms=statement_timeout_ms, on_connect=self._connected
        )

    def record_decision(self, record: DecisionRecord) -> Stored:
        """Store a decision and its risk events (one per rule) in one statement, hence one round trip; a retried
        record finds the row its first attempt stored (``created`` False) and adds any risk event it lacks."""
        with self.database.connection() as conn:
            self._ensure_partition(conn, record.as_of)
            return self._store_decision(conn, record)

    def record_batch(self, records: Sequence[tuple[DecisionRecord | FailureRecord, str]]) -> list[Stored]:
        """Store a batch's decisions and failures (each with its message; a decision's is unused) in ONE
        transaction: all of them or, when any statement fails, none (the state machine then defers the batch to
        the dead-letter queue whole). Each record is as idempotent as alone: a retried batch gets its first
        write's ids back with ``created`` False. The months' partitions are ensured first, outside it, so a
        rolled-back batch never leaves this connection believing a partition exists."""
        with self.database.connection() as conn:
            for record in records:
                if isinstance(record[0], DecisionRecord):
                    self._ensure_partition(conn, record[0].as_of)
            with conn.transaction():
                return [
                    self._store_decision(conn, rec)
                    if isinstance(rec, DecisionRecord)
                    else self._store(conn, _INSERT_FAILURE, _FIND_FAILURE, self._failure_params(rec, message))
                    for rec, message in records
                ]

    def _store_decision(self, conn: psycopg.Connection, record: DecisionRecord) -> Stored:
        row = decision_row(record, self._stage)
        blocked, detail, rules = risk_params(record)
        inserted = conn.execute(INSERT_DECISION, (*row, blocked, detail, rules)).fetchone()
        if inserted is not None:
            return Stored(inserted[0], created=True)
        with conn.transaction():  # stored already: read it back (a statement of its own sees a racing commit)
            existing = conn.execute(FIND_DECISION, _natural_key(record)).fetchone()
            if existing is not None and rules:
                conn.execute(
                    INSERT_RISK_EVENTS,
                    (existing[0], record.as_of, record.cycle_id, record.asset, blocked, detail, rules),
                )
        if existing is None:  # deleted between the two statements: vanishingly rare, and safe to retry
            raise TransientError("conflicting row vanished before it could be read back")
        if existing[1] != record.input_sha256:
            # Same cycle, asset and bar but other input: the first write wins; say so loudly.
            logger.warning("decision already stored with different input", extra={"decision_id": existing[0]})
        return Stored(existing[0], created=False)

    def record_failure(self, record: FailureRecord, message: str) -> Stored:
        return self._write(_INSERT_FAILURE, _FIND_FAILURE, self._failure_params(record, message))

    def _failure_params(self, record: FailureRecord, message: str) -> dict[str, Any]:
        params = record.model_dump(mode="python")
        params.update(message=message, cause=Jsonb(_json_or_text(record.cause)), stage=self._stage)
        return params

    def backfill(self, records: Sequence[DecisionRecord]) -> int:
        """Store many decisions at once (backtests, imports); returns how many were new, and re-running the same
        batch adds none.

        COPY straight into ``decisions``, each row built as it is sent (the server stores one while the next is
        built), ``BACKFILL_COPY_ROWS`` rows per COPY so that no statement nears the statement timeout. When any row
        of the batch is stored already (or comes twice), those COPYs are rolled back and the batch goes through a
        temporary table and one idempotent INSERT ... SELECT, so a batch that meets stored rows costs a second
        pass; a batch whose first decision is stored already (a re-run, most likely) takes that path at once.
        Figures: bench/bench_store.py."""
        months = {(at.year, at.month) for at in (r.as_of.astimezone(UTC) for r in records)}
        with self.database.connection() as conn:
            for year, month in months:
                self._ensure_partition(conn, datetime(year, month, 1, tzinfo=UTC))
            with conn.transaction():
                try:
                    if records and conn.execute(FIND_DECISION, _natural_key(records[0])).fetchone() is None:
                        with conn.transaction():
                            self._copy(conn, COPY_DECISIONS, records)
                        return len(records)
                except psycopg.errors.UniqueViolation:
                    pass  # rolled back to the savepoint: the batch meets stored rows
                conn.execute(BACKFILL_TABLE)
                self._copy(conn, COPY_BACKFILL, records)
                return conn.execute(BACKFILL_INSERT).rowcount

    def _copy(self, conn: psycopg.Connection, statement: str, records: Sequence[DecisionRecord]) -> None:
        for start in range(0, len(records), BACKFILL_COPY_ROWS):
            with conn.cursor().copy(statement) as copy:
                for record in records[start : start + BACKFILL_COPY_ROWS]:
                    copy.write_row(decision_row(record, self._stage))

    def record_execution(
        self, inp: ExecuteOrderInput, order: OrderRequest, result: OrderResult, venue: str, mode: str
    ) -> bool:
        """Link an order to its decision; False when a retried task finds it already linked."""
        params = {
            "decision_id": inp.recorded.id,
            "as_of": inp.as_of,
            "venue": venue,
            "mode": mode,
            "client_order_id": order.client_order_id,
            "venue_order_id": result.venue_order_id,
            "side": order.side.value,
            "quantity": order.quantity,
            "price": result.average_price,
            "status": str(result.status),
            "detail": Jsonb({"fee": str(result.fee), "detail": result.detail}),
        }
        return self._execute(_INSERT_EXECUTION, params)

    def open_cycle(
        self, cycle: CycleHeader, execution_id: str, execution_status: ExecutionStatus | None = None
    ) -> Opened:
        """Register a cycle as RUNNING, or as SKIPPED when another cycle of its stage and timeframe still runs.

        Under an advisory lock per stage and timeframe (and a unique index on the running one): an earlier cycle
        still marked RUNNING is judged by its execution's status (``execution_status``; by its age when that
        cannot be read) and closed as ABORTED / TIMED_OUT / its execution's outcome when it is over. A retried
        task gets the first registration back (``created`` False).
        """
        params = {
            "id": cycle.cycle_id,
            "execution_arn": execution_id,
            "stage": self._stage,
            "timeframe": cycle.timeframe,
            "as_of": cycle.as_of_time(),
            "assets": Jsonb(cycle.assets),
        }
        with self.database.transaction() as conn:
            return self._open(conn, params, execution_status)

    def _open(
        self, conn: psycopg.Connection, params: dict[str, Any], execution_status: ExecutionStatus | None
    ) -> Opened:
        key = f"ffe-cycle:{params['stage']}:{params['timeframe']}"
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
        again = conn.execute("SELECT status, reason FROM cycles WHERE id = %(id)s", params).fetchone()
        if again is not None:
            return Opened(False, again[0], again[1])
        live: str | None = None
        closed: list[tuple[str, str]] = []
        for other_id, arn, started, age in conn.execute(_RUNNING_CYCLES, params).fetchall():
            verdict = _judge(arn, float(age), execution_status)
            if isinstance(verdict, Running):
                live = (
                    f"cycle {other_id} of stage {params['stage']}, timeframe {params['timeframe']}, started "
                    f"{started.isoformat()}, is still running ({verdict.why}; execution {arn}): one cycle per "
                    "stage and timeframe at a time"
                )
                continue
            reason = f"closed when cycle {params['id']} started: {verdict.reason}"
            conn.execute(_CLOSE_CYCLE, {"id": other_id, "status": verdict.status, "reason": reason})
            closed.append((other_id, verdict.status))
        status = "SKIPPED" if live else "RUNNING"
        conn.execute(_OPEN_CYCLE, {**params, "status": status, "reason": live or ""})
        return Opened(True, status, live or "", tuple(closed))

    def close_cycle(self, cycle_id: str, status: str, reason: str = "") -> bool:
        """Mark a RUNNING cycle SUCCEEDED or FAILED; False when it was closed already (or never opened)."""
        return self._execute(_CLOSE_CYCLE, {"id": cycle_id, "status": status, "reason": reason})

    def _execute(self, sql: str, params: dict[str, Any]) -> bool:
        with self.database.connection() as conn:
            return conn.execute(sql, params).fetchone() is not None

    def _write(self, insert: str, find: str, params: dict[str, Any]) -> Stored:
        """Insert, or read back the row an earlier attempt stored."""
        with self.database.connection() as conn:
            return self._store(conn, insert, find, params)

    @staticmethod
    def _store(conn: psycopg.Connection, insert: str, find: str, params: dict[str, Any]) -> Stored:
        with conn.transaction():
            inserted = conn.execute(insert, params).fetchone()
            if inserted is not None:
                return Stored(inserted[0], created=True)
            existing = conn.execute(find, params).fetchone()
        if existing is None:  # deleted between the two statements: vanishingly rare, and safe to retry
            raise TransientError("conflicting row vanished before it could be read back")
        return Stored(existing[0], created=False)

    def _ensure_partition(self, conn: psycopg.Connection, at: datetime) -> None:
        month = (at.astimezone(UTC).year, at.astimezone(UTC).month)
        if month not in self._partitions:
            conn.execute("SELECT ffe_ensure_decision_partition(%s)", (at,))
            self._partitions.add(month)

    def _connected(self, conn: psycopg.Connection) -> None:
        """A new connection: migrate the schema (offline only); which partitions exist is checked afresh."""
        self._partitions.clear()
        applied = migrate_offline(conn)
        if applied:
            logger.info("schema migrated", extra={"versions": applied})

    def close(self) -> None:
        self.database.close()


def _judge(arn: str | None, age: float, execution_status: ExecutionStatus | None) -> Running | Ended:
    if execution_status is None or not arn:
        return judge_running_cycle(None, age, known=False)
    try:
        return judge_running_cycle(execution_status(arn), age)
    except TransientError as exc:
        logger.warning("execution status unreadable; judging the running cycle by its age", extra={"error": str(exc)})
        return judge_running_cycle(None, age, known=False)


def _natural_key(record: DecisionRecord) -> tuple[Any, ...]:
    """The parameters of FIND_DECISION: the decision's natural key."""
    return record.as_of, record.cycle_id, record.asset, record.bar_time


def _json_or_text(cause: str) -> Any:
    try:
        return json.loads(cause) if cause else None
    except ValueError:
        return {"text": cause}


@container_cached
def get_store() -> PostgresDecisionStore:
    """The container's store, built once so a warm start reuses its connection."""
    settings = get_settings(DatabaseSettings)
    return PostgresDecisionStore(configured(settings), settings.db_statement_timeout_ms, settings.stage)
