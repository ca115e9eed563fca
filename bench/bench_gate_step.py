"""GateRisk per decision with orders on their way, against one embedded PostgreSQL. Prints figures; asserts nothing.

1. The pure gate (``ffe.domain.risk.gate`` + the ``violations`` re-check) with 0 and with 8 pending orders in
   the portfolio, beside each other: what counting orders on their way costs the arithmetic.
2. The whole GateRisk step (``ffe.steps.gate.gate_risk``): the account lock, the reservations, the paper
   account's open orders, balance and positions, the equity marks, the sizing and the reservation written;
   beside raw psycopg doing one transaction with the same advisory lock and one INSERT (the floor of any
   "lock, then reserve" on this database), measured in the same run. Each decision is a new bar, released
   after, so every gate reserves.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import psycopg

from ffe.adapters.equity_marks import PostgresEquityMarks
from ffe.adapters.paper_broker import PaperBroker
from ffe.adapters.reservations import PostgresReservations
from ffe.contracts import BarModel, DataSource, DecisionRecord, GateRiskInput, digest_bars
from ffe.domain.models import Action, Bar, Timeframe
from ffe.domain.portfolio import Balance, OrderSide, PendingOrder, Position, ProductRules
from ffe.domain.risk import Portfolio, RiskLimits, gate, violations
from ffe.local.postgres import EmbeddedPostgres
from ffe.steps.gate import gate_risk
from ffe.store.migrate import migrate

D = Decimal
SOURCE = DataSource(provider="bench", dataset="bench", synthetic=True, simulated_clock=True)
START = datetime(2024, 1, 1, tzinfo=UTC)
LIMITS = RiskLimits()
RULES = ProductRules("BTCUSD", D("0.0001"), D("0.00000001"), D("1"))


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def line(label: str, samples: list[float], reference: list[float] | None = None) -> None:
    p50, p95 = percentiles(samples)
    ratio = f"   {p50 / percentiles(reference)[0]:5.1f}x the reference" if reference else ""
    print(f"  {label:<62} p50 {p50 * 1e6:7.1f} µs   p95 {p95 * 1e6:7.1f} µs{ratio}")


# --- 1. the pure gate, with and without orders on their way -----------------------------------------------------

returns = [0.01 if i % 2 else -0.01 for i in range(119)]
held = {f"A{i}USD": Position(f"A{i}USD", D(1), D(1000 + i)) for i in range(8)}
prices = {"BTCUSD": D(50000), **{a: p.average_price for a, p in held.items()}}
bare = Portfolio(Balance("USD", D(100000), D(60000)), held, prices, D(100000), D(100000))
pending = tuple(PendingOrder(f"o{i}", f"A{i}USD", OrderSide.BUY, D("0.5"), D(1000 + i)) for i in range(8))
loaded = replace(bare, pending=pending)


def pure(book: Portfolio, n: int = 20_000) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        verdict = gate(Action.BUY, 0.6, "BTCUSD", returns, book, LIMITS, RULES)
        violations("BTCUSD", verdict.side or OrderSide.BUY, verdict.quantity or D("0.01"), book, LIMITS, RULES, returns)
        out.append(time.perf_counter() - t0)
    return out


print("risk gate + re-check per decision, pure (20,000 decisions, 8 positions, 120 bars)")
pure(bare, 2_000), pure(loaded, 2_000)  # warm up both paths first
without = pure(bare)
line("no order on its way (reference)", without)
line("8 orders on their way", pure(loaded), without)


# --- 2. the GateRisk step through the real database -------------------------------------------------------------


def gate_input(i: int) -> GateRiskInput:
    bars = [Bar(START + timedelta(hours=i + k), 100.0, 102.0, 98.0, 101.0 if k % 2 else 99.0, 10.0) for k in range(120)]
    models = [BarModel.from_domain(b) for b in bars]
    as_of = bars[-1].time + timedelta(hours=1, minutes=1)
    decision = DecisionRecord(
        cycle_id=f"bench-{i}",
        as_of=as_of,
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        bar_time=bars[-1].time,
        action=Action.BUY,
        confidence=0.6,
        stale=False,
        reason="bench",
        data_age_seconds=60.0,
        staleness_threshold_seconds=7200,
        model="bench",
        model_version="1",
        source=SOURCE,
        input_sha256=digest_bars(models),
    )
    staleness = {
        "stale": False,
        "code": "fresh",
        "reason": "fresh",
        "bar_count": 120,
        "last_bar_time": bars[-1].time,
        "age_seconds": 60.0,
        "threshold_seconds": 7200,
        "checked_at": as_of,
    }
    return GateRiskInput(
        cycle_id=f"bench-{i}",
        as_of=as_of,
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        source=SOURCE,
        bars=models,
        bars_sha256=digest_bars(models),
        staleness=staleness,
        decision=decision,
    )


with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "data") as pg:
    reservations = PostgresReservations(pg.url, ttl_seconds=1200)
    broker = PaperBroker(pg.url, f"paper-bench-{uuid.uuid4().hex[:8]}", clock=lambda: START)
    memory = PostgresEquityMarks(pg.url)
    inputs = [gate_input(i) for i in range(400)]
    with psycopg.connect(pg.url, autocommit=True) as conn:
        migrate(conn)
        raw = []
        for i in range(400):
            t0 = time.perf_counter()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("bench-account",))
                conn.execute(
                    "INSERT INTO order_reservations (client_order_id, account, asset, bar_time, side, quantity, price,"
                    " cycle_id, status, assessment, expires_at) VALUES (%s, 'raw', 'BTCUSD', %s, 'BUY', 1, 100,"
                    " 'raw', 'RELEASED', '{}', now())",
                    (f"raw-{i}", START + timedelta(hours=i)),
                )
            raw.append(time.perf_counter() - t0)
        steps = []
        for i, inp in enumerate(inputs):
            t0 = time.perf_counter()
            gate_risk(inp, broker, LIMITS, lambda asset, broken: None, reservations, memory)
            steps.append(time.perf_counter() - t0)
            conn.execute("UPDATE order_reservations SET status = 'RELEASED' WHERE cycle_id = %s", (f"bench-{i}",))
    print("GateRisk step per decision through PostgreSQL (400 decisions, each reserving)")
    line("raw psycopg: lock + one INSERT in a transaction (reference)", raw)
    line("gate_risk: lock, reservations, paper account, size, reserve", steps, raw)
    for closable in (reservations, broker, memory):
        closable.close()
