"""What the local store (Postgres) and the state dir recorded, as series for the widgets whose EMF is missing.

Times are the rows' wall-clock times (``created_at``, ``started_at``), on the same axis as the EMF lines.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from ffe.monitoring.emf import Series

Rows = list[dict[str, Any]]


def store_series(state: Any, bucket_s: int, stage: str = "dev") -> dict[str, Series]:
    """widget id -> series from the store; empty when nothing was ever recorded (no cluster is made for it)."""
    out: dict[str, Series] = {}
    parked = _count_lines_of(state.dead_letters)
    if parked is not None:
        out["dlq-depth"] = {"parked records (.ffe/dead-letters.json)": [(parked[0], float(parked[1]))]}
    if not (os.environ.get("DATABASE_URL") or state.pgdata.exists()):
        return out
    import psycopg
    from psycopg.rows import dict_row

    with state.postgres() as pg, psycopg.connect(pg.url, row_factory=dict_row) as conn:
        tables = {
            r["t"]
            for r in conn.execute(
                "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall()
        }
        rows = {t: conn.execute(q).fetchall() for t, q in _QUERIES.items() if t in tables}
        if {"paper_accounts", "paper_positions"} <= tables:
            rows["equity"] = conn.execute(_EQUITY, (f"paper-{stage}",)).fetchall()
        rows["connections"] = conn.execute(
            "SELECT now() AS at, count(*)::float AS n FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    return {**out, **series_from_rows(rows, bucket_s)}


_QUERIES = {
    "decisions": "SELECT created_at AS at, action, asset, stale FROM decisions",
    "failures": "SELECT created_at AS at, error_class FROM failures",
    "cycles": "SELECT started_at AS at, finished_at, status, timeframe FROM cycles",
    "executions": "SELECT created_at AS at, side FROM executions",
}
_EQUITY = (
    "SELECT now() AS at, a.id AS account, a.cash + coalesce(sum(p.quantity * p.mark_price), 0) AS equity"
    " FROM paper_accounts a LEFT JOIN paper_positions p ON p.account_id = a.id WHERE a.id = %s GROUP BY a.id, a.cash"
)


def series_from_rows(rows: dict[str, Rows], bucket_s: int) -> dict[str, Series]:
    """The store's rows as widget series (pure: the tests feed it rows)."""
    decisions = rows.get("decisions", [])
    cycles = rows.get("cycles", [])
    out = {
        "action-mix": _count(decisions, bucket_s, lambda r: f"{r['action']} (store)"),
        "stale-holds": _count(
            [r for r in decisions if r["stale"] and r["action"] == "HOLD"], bucket_s, lambda r: f"{r['asset']} (store)"
        ),
        "trade-frequency": _count(rows.get("executions", []), bucket_s, lambda r: f"{r['side']} placed (store)"),
        "failures": {
            **_count(rows.get("failures", []), bucket_s, lambda r: f"failure {r['error_class']} (store)"),
            **_count(cycles, bucket_s, lambda r: f"cycle {r['status']} {r['timeframe']} (store)"),
        },
        "cycle-duration": _values(
            [r for r in cycles if r["finished_at"] is not None],
            lambda r: (r["finished_at"] - r["at"]).total_seconds() * 1000,
            lambda r: "cycle duration ms (store)",
        ),
        "portfolio-value": _values(rows.get("equity", []), lambda r: r["equity"], lambda r: f"{r['account']} (store)"),
        "database": _values(rows.get("connections", []), lambda r: r["n"], lambda r: "connections (local Postgres)"),
    }
    return {widget: series for widget, series in out.items() if series}


def _count(rows: Rows, bucket_s: int, label: Any) -> Series:
    counts: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        counts[label(r)][_epoch(r["at"]) // bucket_s * bucket_s] += 1
    return {k: sorted(v.items()) for k, v in sorted(counts.items())}


def _values(rows: Rows, value: Any, label: Any) -> Series:
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: _epoch(r["at"])):
        out[label(r)].append((_epoch(r["at"]), float(value(r))))
    return dict(out)


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _count_lines_of(path: Any) -> tuple[float, int] | None:
    """(file's modification time, records in it) for the local dead-letter file, None when there is none."""
    from ffe.local.aws import queue_file
    from ffe.local.errors import LocalError

    if not path.exists():
        return None
    try:
        return path.stat().st_mtime, len(queue_file(path))
    except LocalError:  # an unreadable file is `ffe dlq`'s to report; the page leaves it out
        return None
