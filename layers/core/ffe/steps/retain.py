"""Decision retention: the month partitions of ``decisions`` past the retention window are exported, then dropped.

The window is ``DECISION_RETENTION_DAYS`` (template parameter ``DecisionRetentionDays``, default 90). Retention
works on whole months, the partitions' grain: a month's partition goes once all of it (its upper bound) is older
than the window, so at 90 days between 90 and about 121 days of decisions stay in the database.

Order of work, so that nothing is deleted unexported: list the partitions whose upper bound is at or before the
start of the month the window's edge falls in, then, oldest first, one partition at a time:

1. export it, when an archive is configured, as gzipped CSV (``COPY … TO STDOUT``, with a header row), streamed
   to S3: Parquet would need pyarrow, too big for a lean Lambda;
2. drop it with ``ffe_drop_decision_partitions`` (migration 0002), its cut-off set to this partition's upper
   bound: the older ones are gone already, so it drops exactly this one.

One partition at a time, so a run cut short (the Lambda's timeout on a long backlog) keeps what it finished and
the next run carries on. A run that fails between 1 and 2 exports that partition again next time (same key,
overwritten); a run with nothing past the window does nothing, so the job is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from pydantic import Field

from ffe.adapters.database import Database
from ffe.observability import logger
from ffe.settings import DatabaseSettings

# (partition name, its CSV chunks) -> where the export went (an s3:// URI)
Export = Callable[[str, Iterator[bytes]], str]

_PARTITIONS = r"""
SELECT c.relname,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'decisions'::regclass
ORDER BY upper
"""


class RetentionSettings(DatabaseSettings):
    """RetainDecisions: the window, and the bucket the partitions go to first (unset: dropped unexported)."""

    decision_retention_days: int = Field(default=90, ge=1, le=3650)
    decision_archive_bucket: str | None = None
    decision_archive_prefix: str = "decisions/"
    # a whole partition's export runs in one statement; the lock wait for DROP stays short (see the handler)
    retention_statement_timeout_ms: int = Field(default=600_000, ge=1000, le=900_000)
    retention_lock_timeout_ms: int = Field(default=3000, ge=100, le=60_000)


@dataclass
class RetentionResult:
    cutoff: datetime  # partitions whose upper bound is at or before this month start go
    dropped: list[str] = field(default_factory=list)
    exported: dict[str, str] = field(default_factory=dict)  # partition -> s3:// URI

    def as_dict(self) -> dict[str, object]:
        return {"cutoff": self.cutoff.isoformat(), "dropped": self.dropped, "exported": self.exported}


def month_cutoff(now: datetime, retention_days: int) -> datetime:
    """The start (UTC) of the month that holds ``now - retention_days``: partitions ending by then are past."""
    edge = (now - timedelta(days=retention_days)).astimezone(UTC)
    return edge.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def expired_partitions(conn: psycopg.Connection, cutoff: datetime) -> list[tuple[str, datetime]]:
    """``(name, upper bound)`` of every partition whose upper bound is at or before ``cutoff``, oldest first."""
    rows = conn.execute(_PARTITIONS).fetchall()
    return [(name, upper) for name, upper in rows if upper is not None and upper <= cutoff]


def copy_partition(conn: psycopg.Connection, partition: str) -> Iterator[bytes]:
    """The partition's rows as CSV with a header, in ``(as_of, id)`` order, chunk by chunk as the server sends."""
    query = sql.SQL("COPY (SELECT * FROM {} ORDER BY as_of, id) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
        sql.Identifier(partition)
    )
    with conn.cursor().copy(query) as copy:
        for chunk in copy:
            yield bytes(chunk)


def retain_decisions(
    database: Database[psycopg.rows.TupleRow], *, retention_days: int, now: datetime, export: Export | None
) -> RetentionResult:
    """Export (when ``export`` is given) and drop the decision partitions past the window; see the module."""
    result = RetentionResult(cutoff=month_cutoff(now, retention_days))
    with database.connection() as conn:
        expired = expired_partitions(conn, result.cutoff)
        if not expired:
            logger.info("decision retention: nothing past the window", extra={"cutoff": result.cutoff.isoformat()})
            return result
        for partition, upper in expired:
            if export is not None:
                result.exported[partition] = export(partition, copy_partition(conn, partition))
                logger.info(
                    "decision partition exported", extra={"partition": partition, "to": result.exported[partition]}
                )
            # The SQL function drops partitions whose upper bound is at or before month_start(now_) - keep_months:
            # now_ = upper + 1 month and keep_months = 1 give back ``upper`` (a month start).
            rows = conn.execute(
                "SELECT * FROM ffe_drop_decision_partitions(1, %s::timestamptz + interval '1 month')", (upper,)
            ).fetchall()
            dropped = [name for (name,) in rows]
            if dropped != [partition]:  # only if partitions were attached or dropped by someone else meanwhile
                logger.error(
                    "decision retention dropped other partitions than the one it exported",
                    extra={"expected": partition, "dropped": dropped},
                )
            result.dropped.extend(dropped)
            logger.info("decision partition dropped", extra={"partitions": dropped, "retention_days": retention_days})
    return result
