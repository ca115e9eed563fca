"""Decision-store throughput and API read latency, against one embedded PostgreSQL, side by side.

Prints figures; asserts nothing. Rows per second for: idempotent single inserts (the RecordDecision
path), the same rows again (duplicates), executemany in one transaction, the COPY-based idempotent
backfill, and a raw psycopg COPY baseline (no conflict handling) measured in the same run. Then
GET /decisions p50/p95 through the real API handler over 100,000 stored decisions.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "FFE")

import psycopg

from ffe.adapters import store as store_module
from ffe.adapters.store import PostgresDecisionStore, _decision_params
from ffe.contracts import DataSource, DecisionRecord
from ffe.domain.models import Action, Timeframe
from ffe.local.postgres import EmbeddedPostgres
from ffe.store.migrate import migrate

SOURCE = DataSource(provider="replay", dataset="bench", synthetic=False, simulated_clock=True)
ASSETS = ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD")
START = datetime(2024, 1, 1, tzinfo=UTC)


def records(prefix: str, n: int) -> list[DecisionRecord]:
    """n decisions: 4 assets per hourly cycle, spread over consecutive hours (several monthly partitions)."""
    out = []
    for i in range(n):
        as_of = START + timedelta(hours=i // len(ASSETS), minutes=1)
        out.append(
            DecisionRecord(
                cycle_id=f"{prefix}-{i // len(ASSETS)}",
                as_of=as_of,
                timeframe=Timeframe.H1,
                asset=ASSETS[i % 4],
                bar_time=as_of - timedelta(minutes=61),
                action=(Action.BUY, Action.SELL, Action.HOLD)[i % 3],
                confidence=0.5,
                stale=False,
                reason="bench",
                data_age_seconds=60.0,
                staleness_threshold_seconds=7200,
                model="naive_router",
                model_version="1",
                signals={"trend_following": 0.1},
                source=SOURCE,
                input_sha256="0" * 64,
            )
        )
    return out


def rate(label: str, n: int, seconds: float) -> None:
    print(f"  {label:<44} {n:7d} rows  {n / seconds:9.0f} rows/s  ({seconds:.2f} s)")


with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "data") as pg:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        migrate(conn)
    store = PostgresDecisionStore(pg.url)
    print(f"decision store on {pg.kind}")

    single = records("single", 2000)
    t0 = time.perf_counter()
    for rec in single:
        store.record_decision(rec)
    rate("idempotent single insert (RecordDecision)", len(single), time.perf_counter() - t0)
    t0 = time.perf_counter()
    for rec in single:
        store.record_decision(rec)
    rate("same rows again (duplicates, read back)", len(single), time.perf_counter() - t0)

    many = records("many", 20_000)
    with psycopg.connect(pg.url) as conn:
        for month in {r.as_of.replace(day=1, hour=0, minute=0) for r in many}:
            conn.execute("SELECT ffe_ensure_decision_partition(%s)", (month,))
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(store_module._INSERT_DECISION, [_decision_params(r, "bench") for r in many])
        conn.commit()
        rate("executemany, one transaction (idempotent)", len(many), time.perf_counter() - t0)

    backfill = records("backfill", 20_000)
    t0 = time.perf_counter()
    store.backfill(backfill)
    rate("backfill: COPY + INSERT ... ON CONFLICT", len(backfill), time.perf_counter() - t0)

    raw = [_decision_params(r, "bench") for r in records("raw", 20_000)]
    with psycopg.connect(pg.url) as conn:
        t0 = time.perf_counter()
        with conn.cursor().copy(
            store_module._COPY_BACKFILL.as_string(conn).replace("backfill_decisions", "decisions")
        ) as copy:
            for row in raw:
                copy.write_row([row[c] for c in store_module._DECISION_COLUMNS])
        conn.commit()
        rate("raw psycopg COPY baseline (no conflict check)", len(raw), time.perf_counter() - t0)

    # GET /decisions over 100k stored decisions, through the real API handler in-process
    store.backfill(records("api", 100_000 - 62_000))
    with psycopg.connect(pg.url) as conn:
        total = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]  # type: ignore[index]
        conn.execute("ANALYZE decisions")
    os.environ["DATABASE_URL"] = pg.url
    from urllib.parse import urlencode

    from ffe.local.api_server import proxy_event
    from functions.api.handler import lambda_handler

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "api", 512, "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 30_000

    def timed(query: dict[str, str]) -> tuple[float, dict]:  # type: ignore[type-arg]
        t0 = time.perf_counter()
        event = proxy_event("GET", "/decisions?" + urlencode(query), {"Host": "localhost"}, b"")
        response = lambda_handler(event, Context())
        return time.perf_counter() - t0, response

    print(f"\nGET /decisions over {total} stored decisions (API handler in-process, 200 requests each)")
    timed({})  # warm: connection, imports
    for label, query in (
        ("newest 50", {}),
        ("asset=ETHUSD, limit=100", {"asset": "ETHUSD", "limit": "100"}),
        ("action=SELL, one week", {"action": "SELL", "from": "2024-02-01T00:00:00Z", "to": "2024-02-08T00:00:00Z"}),
    ):
        samples = sorted(timed(query)[0] for _ in range(200))
        p50, p95 = statistics.median(samples), samples[int(len(samples) * 0.95)]
        print(f"  {label:<32} p50 {p50 * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms")
    cursor, pages, t0 = None, 0, time.perf_counter()
    while pages < 100:
        _, response = timed({"limit": "500", **({"cursor": cursor} if cursor else {})})
        cursor = json.loads(response["body"]).get("next_cursor")
        pages += 1
        if not cursor:
            break
    print(f"  paging with the cursor           {pages} pages of 500 in {time.perf_counter() - t0:.2f} s")
    store.close()
