"""What the golden walk left in PostgreSQL, read back table by table as JSON-able rows keyed by natural key.

Only columns that legitimately vary from run to run are left out (``EXCLUDED``, each with its reason); an id that
links two tables is replaced by the natural key of the row it points at, so the link itself is still compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

Row = dict[str, Any]

_ID = "a surrogate key from an identity sequence: what a row is, is its natural key (the key of its record)"
_INSERTED = "the wall clock when the row was written (DEFAULT now())"
EXCLUDED: dict[str, dict[str, str]] = {
    "decisions": {
        "id": _ID,
        "created_at": _INSERTED,
        "decision_latency_ms": "the measured wall-clock latency of the decision path (fetch start to record)",
    },
    "risk_events": {"id": _ID, "created_at": _INSERTED},
    "failures": {"id": _ID, "created_at": _INSERTED},
    "executions": {"id": _ID, "created_at": _INSERTED},
    "cycles": {
        "started_at": "the wall clock when the cycle opened (DEFAULT now())",
        "finished_at": "the wall clock when the cycle closed (now())",
    },
    "order_reservations": {
        "created_at": _INSERTED,
        "updated_at": "the wall clock of the last status change (now())",
        "expires_at": "the wall clock at reservation plus RESERVATION_TTL_SECONDS",
    },
    "paper_accounts": {"created_at": _INSERTED},
    "equity_marks": {"updated_at": "the wall clock of the last mark (now())"},
}
# Anywhere inside a stored JSON document (decisions.reasons.voters[*], decisions.arms[*]), and in the state outputs.
EXCLUDED_KEYS = {
    "latency_ms": "a voter's or an arm's measured rollout time at the endpoint (time.perf_counter)",
    "fetch_started_at": "the wall clock when FetchMarketData started (the latency metric's start)",
}

# table -> its natural key (rows are read in its order); a row that links to a decision names it by its natural key
TABLES: dict[str, tuple[str, ...]] = {
    "cycles": ("id",),
    "decisions": ("cycle_id", "asset", "bar_time"),
    "risk_events": ("cycle_id", "asset", "rule"),
    "failures": ("cycle_id", "asset"),
    "executions": ("client_order_id",),
    "order_reservations": ("client_order_id",),
    "paper_accounts": ("id",),
    "paper_positions": ("account_id", "asset"),
    "paper_orders": ("client_order_id",),
    "equity_marks": ("account",),
}
_LINKED = {"risk_events": "decision_id", "executions": "decision_id"}


def plain(value: Any) -> Any:
    """A column's value as JSON keeps it exactly: times in UTC ISO 8601, numerics as their text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in EXCLUDED_KEYS}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def stored_rows(database_url: str) -> Iterator[tuple[str, str, Row]]:
    """(table, natural key, row) for every row of ``TABLES``, in key order."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        decision_keys = {
            row[0]: _key((row[1], row[2], row[3]))
            for row in conn.execute("SELECT id, cycle_id, asset, bar_time FROM decisions").fetchall()
        }
        for table, key_columns in TABLES.items():
            order = sql.SQL(", ").join(map(sql.Identifier, key_columns))
            query = sql.SQL("SELECT * FROM {} ORDER BY {}").format(sql.Identifier(table), order)
            cursor = conn.execute(query)
            names = [d.name for d in cursor.description or []]
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                key = _key(tuple(row[c] for c in key_columns))
                if table in _LINKED:
                    row["decision"] = decision_keys.get(row.pop(_LINKED[table]))
                yield table, key, {k: plain(v) for k, v in row.items() if k not in EXCLUDED.get(table, {})}


def table_counts(database_url: str) -> dict[str, int]:
    """Rows per table that holds any (partitions counted with their parent; the migrations' own table left out,
    since a new migration is a schema change, not a decision): a write to any other table shows here."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        names = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " AND c.relname <> 'schema_migrations' ORDER BY c.relname"
        ).fetchall()
        counts = {}
        for (name,) in names:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
            row = conn.execute(query).fetchone()
            if row is not None and row[0]:
                counts[name] = int(row[0])
    return counts


def _key(values: tuple[Any, ...]) -> str:
    return " ".join("-" if v is None else str(plain(v)) for v in values)
