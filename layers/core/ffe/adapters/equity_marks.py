"""The kill switches' memory: each venue account's start-of-day (UTC) equity and its peak equity."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import psycopg

from ffe.domain.errors import TransientError

_MARK = """
INSERT INTO equity_marks (account, day_start_date, day_start_equity, peak_equity)
VALUES (%(account)s, %(day)s, %(equity)s, %(equity)s)
ON CONFLICT (account) DO UPDATE SET
    day_start_equity = CASE WHEN equity_marks.day_start_date = EXCLUDED.day_start_date
                            THEN equity_marks.day_start_equity ELSE EXCLUDED.day_start_equity END,
    day_start_date = EXCLUDED.day_start_date,
    peak_equity = GREATEST(equity_marks.peak_equity, EXCLUDED.peak_equity),
    updated_at = now()
RETURNING day_start_equity, peak_equity
"""


class PostgresEquityMarks:
    """``ffe.domain.ports.EquityMemory`` on PostgreSQL."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def marks(self, account: str, day: date, equity: Decimal) -> tuple[Decimal, Decimal]:
        """(start-of-day equity, peak equity) after seeing ``equity`` on ``day``: a new day starts afresh."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                row = self._conn.execute(_MARK, {"account": account, "day": day, "equity": equity}).fetchone()
            except psycopg.OperationalError as exc:
                raise TransientError(f"equity marks unavailable: {exc}") from exc
        assert row is not None
        return Decimal(row[0]), Decimal(row[1])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
