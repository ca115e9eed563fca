"""Decision retention: the month partitions of ``decisions`` past the retention window are exported, then dropped.

The window is ``DECISION_RETENTION_DAYS`` (template parameter ``DecisionRetentionDays``, default 90). Retention
works on whole months, the partitions' grain: a month's partition goes once all of it (its upper bound) is older
than the window, so at 90 days between 90 and about 121 days of decisions stay in the database.

Order of work, so that nothing is deleted unexported:

1. list the partitions whose upper bound is at or before the start of the month the window's edge falls in;
2. export each of them, when an archive is configured, as gzipped CSV (``COPY … TO STDOUT``, with a header row),
   streamed to S3: Parquet would need pyarrow, too big for a lean Lambda;
3. drop them with ``ffe_drop_decision_partitions`` (migration 0002), whose cut-off is set to the same month
   start; it drops exactly the listed partitions.

A run that fails between 2 and 3 exports the same partitions again next time (same keys, overwritten); a run
with nothing past the window does nothing, so the job is idempotent.
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


def expired_partitions(conn: psycopg.Connection, cutoff: datetime) -> list[str]:
    return [name for name, upper in conn.execute(_PARTITIONS).fetchall() if upper is not None and upper <= cutoff]


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
        if export is not None:
            for partition in expired:
                result.exported[partition] = export(partition, copy_partition(conn, partition))
                logger.info(
                    "decision partition exported", extra={"partition": partition, "to": result.exported[partition]}
                )
        # The SQL function's cut-off is (month start of now_) - keep_months; now_ = cutoff + 1 month, keep 1 month
        # gives back exactly ``result.cutoff``.
        rows = conn.execute(
            "SELECT * FROM ffe_drop_decision_partitions(1, %s::timestamptz + interval '1 month')", (result.cutoff,)
        ).fetchall()
    result.dropped = [name for (name,) in rows]
    unexported = set(result.dropped) - set(result.exported) if export is not None else set()
    if unexported:  # only when a partition was created past the window between the listing and the drop
        logger.error("decision partitions dropped without an export", extra={"partitions": sorted(unexported)})
    logger.info(
        "decision partitions dropped",
        extra={"partitions": result.dropped, "cutoff": result.cutoff.isoformat(), "retention_days": retention_days},
    )
    return result
