"""Paper-broker cost per order (place, then fill at the next bar's open) against a local PostgreSQL.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from ffe.adapters.paper_broker import PaperBroker
from ffe.domain.models import Bar
from ffe.domain.portfolio import OrderRequest, OrderSide
from ffe.local.postgres import EmbeddedPostgres
from ffe.store.migrate import migrate

N = 500
START = datetime(2024, 1, 1, tzinfo=UTC)

with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(Path(tmp) / "data") as pg:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        migrate(conn)
    clock = [START]
    broker = PaperBroker(pg.url, "bench", clock=lambda: clock[0], starting_cash=Decimal("1e9"))
    place, fill = [], []
    for i in range(N):
        clock[0] = START + timedelta(hours=i)
        t0 = time.perf_counter()
        broker.place_order(
            OrderRequest(f"o{i}", "BTCUSD", OrderSide.BUY if i % 2 == 0 else OrderSide.SELL, Decimal("0.01"))
        )
        place.append(time.perf_counter() - t0)
        bar = Bar(clock[0] + timedelta(hours=1), 40000 + i, 40100 + i, 39900 + i, 40050 + i, 1.0)
        t0 = time.perf_counter()
        broker.settle("BTCUSD", [bar])
        fill.append(time.perf_counter() - t0)
    broker.close()
    print(f"paper broker, {N} orders (one local PostgreSQL)")
    for label, samples in (("place order", place), ("fill at next open", fill)):
        samples.sort()
        p50, p95 = statistics.median(samples), samples[int(N * 0.95)]
        print(f"  {label:<18} p50 {p50 * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms")
