"""The read side of the decision store, for the API (psycopg 3, PostgreSQL 15+ / Aurora).

SQL injection is impossible by construction: every value travels as a bound parameter, and the only
SQL that is ever composed is made of the fixed fragments below, chosen by *which* filters are set,
never by their values. One connection per container (``ffe.adapters.database``: reused across warm
invocations, replaced once when the server dropped it), read-only after the schema is migrated, with the
statement timeout. A database that cannot be reached is a ``DatabaseUnavailableError`` (a ``TransientError``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ffe.adapters.database import DEFAULT_STATEMENT_TIMEOUT_MS, Conninfo, Database, configured
from ffe.containers import container_cached
from ffe.domain.errors import TransientError
from ffe.observability import logger
from ffe.settings import DatabaseSettings, get_settings
from ffe.store.migrate import migrate_offline

T = TypeVar("T")
Row = dict[str, Any]


class DatabaseUnavailableError(TransientError):
    """The decision store cannot be reached (or did not answer within the statement timeout)."""


@dataclass(frozen=True, slots=True)
class DecisionFilters:
    asset: str | None = None
    action: str | None = None
    timeframe: str | None = None
    start: datetime | None = None  # as_of >= start
    end: datetime | None = None  # as_of <= end


@dataclass(frozen=True, slots=True)
class Keyset:
    """The (as_of, id) of the last row already returned; the next page starts strictly after it."""

    as_of: datetime
    id: int


@dataclass(frozen=True)
class CycleRows:
    cycle: Row | None
    decisions: list[Row] = field(default_factory=list)  # the latest decision per asset
    failures: list[Row] = field(default_factory=list)  # the latest failure per asset (asset NULL: the cycle)

    @property
    def found(self) -> bool:
        return self.cycle is not None or bool(self.decisions) or bool(self.failures)


_SUMMARY_COLUMNS = sql.SQL(
    "id, cycle_id, execution_id, stage, asset, timeframe, as_of, bar_time, action, confidence, size, stale, "
    "reason, data_age_seconds, staleness_threshold_seconds, model, model_version, regime, created_at, "
    "experiment_id, arm"
)

# Filter name -> fixed SQL fragment. The named placeholders are bound by psycopg; nothing else varies.
_FILTERS: dict[str, sql.SQL] = {
    "asset": sql.SQL("asset = %(asset)s"),
    "action": sql.SQL("action = %(action)s"),
    "timeframe": sql.SQL("timeframe = %(timeframe)s"),
    "start": sql.SQL("as_of >= %(start)s"),
    "end": sql.SQL("as_of <= %(end)s"),
    # Row comparison walks the (as_of DESC, id DESC) index from the cursor on.
    "after": sql.SQL("(as_of, id) < (%(after_as_of)s, %(after_id)s)"),
}

_LIST_DECISIONS = sql.SQL("SELECT {columns} FROM decisions{where} ORDER BY as_of DESC, id DESC LIMIT %(limit)s")

_GET_DECISION = """
SELECT d.id, d.cycle_id, d.execution_id, d.stage, d.asset, d.timeframe, d.as_of, d.bar_time, d.action, d.confidence,
       d.size, d.stale, d.reason, d.data_age_seconds, d.staleness_threshold_seconds, d.model, d.model_version,
       d.regime, d.created_at, d.reasons, d.source, d.input_sha256, d.experiment_id, d.arm, d.arms, d.bar_close,
       d.decision_latency_ms,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                    'id', r.id, 'rule', r.rule, 'blocked', r.blocked, 'detail', r.detail,
                    'created_at', r.created_at) ORDER BY r.id)
                 FROM risk_events r WHERE r.decision_id = d.id AND r.as_of = d.as_of), '[]'::jsonb) AS risk_events,
       (SELECT jsonb_build_object(
                    'id', e.id, 'venue', e.venue, 'mode', e.mode, 'client_order_id', e.client_order_id,
                    'venue_order_id', e.venue_order_id, 'side', e.side, 'quantity', e.quantity, 'price', e.price,
                    'status', e.status, 'detail', e.detail, 'created_at', e.created_at)
        FROM executions e WHERE e.decision_id = d.id AND e.as_of = d.as_of
        ORDER BY e.id DESC LIMIT 1) AS execution
FROM decisions d
WHERE d.id = %(id)s
ORDER BY d.as_of DESC
LIMIT 1
"""

_GET_CYCLE = """
SELECT id, execution_arn, stage, timeframe, as_of, assets, status, reason, started_at, finished_at
FROM cycles WHERE id = %(cycle_id)s
"""
_CYCLE_DECISIONS = """
SELECT DISTINCT ON (asset) asset, id, action, confidence, reason, stale, execution_id, timeframe, as_of
FROM decisions WHERE cycle_id = %(cycle_id)s
ORDER BY asset, id DESC
"""
_CYCLE_FAILURES = """
SELECT DISTINCT ON (asset) asset, id, error_class, message, execution_id
FROM failures WHERE cycle_id = %(cycle_id)s
ORDER BY asset, id DESC
"""
_LAST_CYCLE_AGE = "SELECT extract(epoch FROM now() - max(finished_at))::float8 FROM cycles"


class DecisionQueries:
    """Read-only queries over decisions, cycles, failures, risk events and executions."""

    def __init__(self, conninfo: Conninfo, statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS) -> None:
        self.database = Database(
            conninfo,
            name="decision store",
            statement_timeout_ms=statement_timeout_ms,
            session={"TimeZone": "UTC"},
            on_connect=_read_only,
            unavailable=DatabaseUnavailableError,
        )

    # --- queries ------------------------------------------------------------------------------------

    def decisions(self, filters: DecisionFilters, after: Keyset | None, limit: int) -> list[Row]:
        """Newest first by (as_of, id); at most ``limit`` rows strictly after the ``after`` keyset."""
        params: dict[str, Any] = {
            "asset": filters.asset,
            "action": filters.action,
            "timeframe": filters.timeframe,
            "start": filters.start,
            "end": filters.end,
            "after_as_of": after.as_of if after else None,
            "after_id": after.id if after else None,
            "limit": limit,
        }
        active = [name for name in ("asset", "action", "timeframe", "start", "end") if params[name] is not None]
        if after is not None:
            active.append("after")
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(_FILTERS[n] for n in active) if active else sql.SQL("")
        query = _LIST_DECISIONS.format(columns=_SUMMARY_COLUMNS, where=where)
        return self._run(lambda conn: conn.cursor(row_factory=dict_row).execute(query, params).fetchall())

    def decision(self, decision_id: int) -> Row | None:
        """One decision with its reasons, source, risk events and latest execution."""
        return self._run(
            lambda conn: conn.cursor(row_factory=dict_row).execute(_GET_DECISION, {"id": decision_id}).fetchone()
        )

    def cycle(self, cycle_id: str) -> CycleRows:
        def work(conn: psycopg.Connection[Any]) -> CycleRows:
            cur = conn.cursor(row_factory=dict_row)
            params = {"cycle_id": cycle_id}
            with conn.transaction():  # one snapshot for the three reads
                cycle = cur.execute(_GET_CYCLE, params).fetchone()
                decisions = cur.execute(_CYCLE_DECISIONS, params).fetchall()
                failures = cur.execute(_CYCLE_FAILURES, params).fetchall()
            return CycleRows(cycle, decisions, failures)

        return self._run(work)

    def ping(self) -> float:
        """Round trip of ``SELECT 1`` in milliseconds (connecting first if needed)."""

        def work(conn: psycopg.Connection[Any]) -> float:
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            return (time.perf_counter() - started) * 1000

        return self._run(work)

    def last_cycle_age_seconds(self) -> float | None:
        row = self._run(lambda conn: conn.execute(_LAST_CYCLE_AGE).fetchone())
        return None if row is None or row[0] is None else float(row[0])

    # --- connection ---------------------------------------------------------------------------------

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self.database.connection() as conn:
            return work(conn)

    def close(self) -> None:
        self.database.close()


def _read_only(conn: psycopg.Connection[Any]) -> None:
    """A new read-side session: offline, the schema migrated (the local API may be the first to connect to a
    fresh database; in AWS MigrateDatabase alone migrates), then every transaction read-only (the read side
    never writes)."""
    applied = migrate_offline(conn)
    if applied:
        logger.info("schema migrated", extra={"versions": applied})
    conn.execute("SET default_transaction_read_only = on")


@container_cached
def get_queries() -> DecisionQueries:
    """The container's queries, built once so a warm start reuses the connection."""
    settings = get_settings(DatabaseSettings)
    return DecisionQueries(configured(settings), settings.db_statement_timeout_ms)
