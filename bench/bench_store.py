"""Decision-store writes beside plain psycopg, on one embedded PostgreSQL in one run; then API read latency.

Prints figures; asserts nothing. Each figure is the median of REPEATS runs, printed beside its reference measured
in the same run (runs interleaved, fresh rows each time) and the ratio:

- RecordDecision's write: ``PostgresDecisionStore.record_decision`` as the handler calls it, one decision at a
  time, risk events included (two rules on every BUY/SELL), beside a plain psycopg INSERT of the same rows: one
  transaction per decision (INSERT ... RETURNING id, then the risk events), as the Lambda writes one decision
  per invocation.
- The backfill: ``PostgresDecisionStore.backfill`` in batches of 5,000 beside a plain psycopg COPY of the same
  rows into ``decisions`` (no conflict handling), batch for batch; and batches half stored already (its idempotent
  path).

The plain references get their values ready-made (``model_dump``, ``Jsonb``: tests/decision_reference.py) before
the clock starts; the store's figures include building them from the records. Then GET /decisions p50/p95
through the real API handler over 100,000 stored decisions. Run: ``.venv/bin/python bench/bench_store.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "FFE")

import psycopg

from ffe.adapters.store import PostgresDecisionStore
from ffe.contracts import DataSource, DecisionRecord, RiskAssessment, VoterOutput
from ffe.domain.models import Action, Timeframe
from ffe.local.postgres import EmbeddedPostgres
from ffe.store.migrate import migrate
from tests.decision_reference import PLAIN_COPY, PLAIN_INSERT, PLAIN_RISK_INSERT, plain_risk_rows, plain_row

REPEATS = 3
BACKFILL_REPEATS = 5
BATCH = 5000  # decisions per backfill call
CHUNK = 50  # decisions per turn when the two sides take turns
RUNS = itertools.count()  # every run writes rows of its own
WRITES = 1000
BACKFILL = 20_000
ASSETS = ("BTCUSD", "ETHUSD", "EURUSD", "GBPUSD")
START = datetime(2024, 1, 1, tzinfo=UTC)
T = TypeVar("T")
SOURCE = DataSource(
    provider="replay", dataset="bench", synthetic=False, simulated_clock=True, fetch_started_at=START, cached_bars=120
)


def records(prefix: str, n: int) -> list[DecisionRecord]:
    """n decisions as a cycle records them: 4 assets per hourly cycle over consecutive hours (several monthly
    partitions), the models' view (signals, weights, regime posterior, the RL voter) and, on every BUY/SELL,
    the risk gate's verdict naming two rules (approved and reduced, or blocked)."""
    out = []
    for i in range(n):
        as_of = START + timedelta(hours=i // len(ASSETS), minutes=1)
        action = (Action.BUY, Action.SELL, Action.HOLD)[i % 3]
        risk = None
        if action is not Action.HOLD:
            risk = RiskAssessment(
                approved=i % 2 == 0,
                side=action.value,
                quantity=Decimal("0.25"),
                reasons=["position_cap", "var_limit"],
                detail={"position_cap": "0.25 > 0.2"},
                broker="paper",
                equity=Decimal("10000"),
                original_action=action,
                original_confidence=0.6,
            )
        out.append(
            DecisionRecord(
                cycle_id=f"{prefix}-{i // len(ASSETS)}",
                as_of=as_of,
                timeframe=Timeframe.H1,
                asset=ASSETS[i % len(ASSETS)],
                bar_time=as_of - timedelta(minutes=61),
                action=action,
                confidence=0.5,
                stale=False,
                reason="bench",
                data_age_seconds=60.0,
                staleness_threshold_seconds=7200,
                model="meta_controller",
                model_version="ffe-000000000001",
                signals={"trend_following": 0.1, "mean_reversion": -0.2, "breakout": 0.05},
                source=SOURCE,
                input_sha256="0" * 64,
                regime="trend",
                regime_probabilities={"trend": 0.7, "range": 0.2, "volatile": 0.1},
                weights={"trend_following": 0.6, "mean_reversion": 0.3, "breakout": 0.1},
                size=0.25 if risk is not None and risk.approved else None,
                risk=risk,
                bar_close=100.5,
                voters=[
                    VoterOutput(
                        voter="rl",
                        status="voted",
                        action=action,
                        confidence=0.5,
                        model="meta_controller",
                        model_version="ffe-000000000001",
                        latency_ms=3.2,
                        weights={"trend_following": 0.6, "mean_reversion": 0.3, "breakout": 0.1},
                    )
                ],
            )
        )
    return out


Unit = Callable[[], object]


def side_by_side(
    label: str, n: int, ours: Callable[[], list[Unit]], plain: Callable[[], list[Unit]], repeats: int = REPEATS
) -> None:
    """Median rows/s of ``ours`` and ``plain`` over ``repeats`` runs of ``n`` rows each. A run is prepared off the
    clock as units of work, and the two sides' units take turns, so both meet the same load from other processes."""
    rates: dict[str, list[float]] = {"ours": [], "plain": []}
    for repeat in range(repeats):
        spent = {"ours": 0.0, "plain": 0.0}
        for turn, pair in enumerate(zip(ours(), plain(), strict=True)):
            order = list(zip(spent, pair, strict=True))
            for name, unit in order[:: -1 if (repeat + turn) % 2 else 1]:  # who goes first alternates
                t0 = time.perf_counter()
                unit()
                spent[name] += time.perf_counter() - t0
        for name, seconds in spent.items():
            rates[name].append(n / seconds)
    a, b = statistics.median(rates["ours"]), statistics.median(rates["plain"])
    print(f"  {label:<58} {a:8.0f} rows/s   reference {b:8.0f} rows/s   ratio {a / b:4.2f}")


def chunks(items: list[T], size: int = CHUNK) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "data") as pg:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        migrate(conn)
    store = PostgresDecisionStore(pg.url, stage="bench")
    plain = psycopg.connect(pg.url)
    plain.execute(
        "SELECT ffe_ensure_decision_partition(m) FROM generate_series(%s, %s, '1 month'::interval) m",
        (START, START + timedelta(days=366)),
    )
    plain.commit()  # every month the runs write to has its partition
    store.backfill(records("warm", 1000))
    for record in records("warm-single", 20):  # the connection, its prepared statements
        store.record_decision(record)
    print(f"decision store on {pg.kind}; median of {REPEATS}, ours beside the plain psycopg reference")

    def store_writes() -> list[Unit]:
        return [partial(store_write, batch) for batch in chunks(records(f"store-{next(RUNS)}", WRITES))]

    def store_write(batch: list[DecisionRecord]) -> None:
        for record in batch:
            store.record_decision(record)

    def plain_writes() -> list[Unit]:
        rows = [(plain_row(r, "bench"), r) for r in records(f"plain-{next(RUNS)}", WRITES)]
        return [partial(plain_write, batch) for batch in chunks(rows)]

    def plain_write(batch: list[tuple[tuple[Any, ...], DecisionRecord]]) -> None:
        for row, record in batch:
            decision_id = plain.execute(PLAIN_INSERT, row).fetchone()[0]  # type: ignore[index]
            if risk := plain_risk_rows(record, decision_id):
                plain.cursor().executemany(PLAIN_RISK_INSERT, risk)
            plain.commit()

    def plain_decision_rows() -> list[Unit]:
        rows = [plain_row(r, "bench") for r in records(f"floor-{next(RUNS)}", WRITES)]
        return [partial(plain_insert, batch) for batch in chunks(rows)]

    def plain_insert(batch: list[tuple[Any, ...]]) -> None:
        for row in batch:
            plain.execute(PLAIN_INSERT, row)
            plain.commit()

    side_by_side(f"RecordDecision write, {WRITES} decisions (risk events included)", WRITES, store_writes, plain_writes)
    side_by_side(
        "  the same, beside the decision rows alone (no risk events)", WRITES, store_writes, plain_decision_rows
    )

    backfills = itertools.count()

    def store_backfill() -> list[Unit]:
        batch = records(f"backfill-{next(backfills)}", BACKFILL)
        return [partial(store.backfill, part) for part in chunks(batch, BATCH)]

    def store_backfill_again() -> list[Unit]:  # half of each batch stored already: the idempotent path
        stored, new = records(f"backfill-{next(backfills)}", BACKFILL), records(f"again-{next(RUNS)}", BACKFILL)
        return [
            partial(store.backfill, old[: BATCH // 2] + fresh[: BATCH // 2])
            for old, fresh in zip(chunks(stored, BATCH), chunks(new, BATCH), strict=True)
        ]

    def plain_copy() -> list[Unit]:
        rows = [plain_row(r, "bench") for r in records(f"copy-{next(RUNS)}", BACKFILL)]
        return [partial(plain_copy_rows, part) for part in chunks(rows, BATCH)]

    def plain_copy_rows(rows: list[tuple[Any, ...]]) -> None:
        with plain.cursor().copy(PLAIN_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        plain.commit()

    label = f"backfill, {BACKFILL} decisions in batches of {BATCH}"
    side_by_side(f"{label}, all new", BACKFILL, store_backfill, plain_copy, BACKFILL_REPEATS)
    backfills = itertools.count()  # the same batches again
    side_by_side(f"{label}, half stored already", BACKFILL, store_backfill_again, plain_copy, BACKFILL_REPEATS)
    plain.close()

    # GET /decisions over 100k stored decisions, through the real API handler in-process
    with psycopg.connect(pg.url) as conn:
        conn.execute("TRUNCATE decisions, risk_events")
    api = records("api", 100_000)
    for start in range(0, len(api), BACKFILL):
        store.backfill(api[start : start + BACKFILL])
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

    def timed(query: dict[str, str]) -> tuple[float, dict[str, Any]]:
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
