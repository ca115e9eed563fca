"""The kill switches' memory: each venue account's start-of-day (UTC) equity and its peak equity."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ffe.adapters.database import DEFAULT_STATEMENT_TIMEOUT_MS, Conninfo, Database

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

    def __init__(self, conninfo: Conninfo, statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS) -> None:
        self.database = Database(conninfo, name="equity marks", statement_timeout_ms=statement_timeout_ms)

    def marks(self, account: str, day: date, equity: Decimal) -> tuple[Decimal, Decimal]:
        """(start-of-day equity, peak equity) after seeing ``equity`` on ``day``: a new day starts afresh."""
        with self.database.connection() as conn:
            row = conn.execute(_MARK, {"account": account, "day": day, "equity": equity}).fetchone()
        assert row is not None
        return Decimal(row[0]), Decimal(row[1])

    def close(self) -> None:
        self.database.close()
