"""Risk gate per decision, p50/p95 in microseconds (in-process, pure). Prints figures; asserts nothing.

For scale: the product's previous risk service took 4.12 ms p95 per decision over the network.
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal

from ffe.domain.models import Action
from ffe.domain.portfolio import Balance, Position, ProductRules
from ffe.domain.risk import Portfolio, RiskLimits, gate, violations

D = Decimal
rng = random.Random(7)
RULES = ProductRules("BTCUSD", min_size=D("0.0001"), size_increment=D("0.00000001"), min_notional=D("1"))
LIMITS = RiskLimits()
returns = [rng.gauss(0, 0.01) for _ in range(120)]
books = []
for _ in range(200):
    held = D(str(round(rng.uniform(0, 0.5), 4)))
    others = {f"A{i}USD": Position(f"A{i}USD", D(1), D(str(round(rng.uniform(100, 3000), 2)))) for i in range(8)}
    prices = {"BTCUSD": D("50000"), **{a: p.average_price for a, p in others.items()}}
    equity = D(str(round(rng.uniform(50_000, 500_000), 2)))
    books.append(
        Portfolio(
            Balance("USD", equity, equity / 2),
            {"BTCUSD": Position("BTCUSD", held, D(48000)), **others},
            prices,
            equity,
            equity * D("1.05"),
        )
    )

samples = []
for i in range(20_000):
    book = books[i % len(books)]
    action = Action.BUY if i % 2 else Action.SELL
    t0 = time.perf_counter()
    gate(action, 0.6, "BTCUSD", returns, book, LIMITS, RULES)
    samples.append(time.perf_counter() - t0)
samples.sort()
p50, p95 = statistics.median(samples), samples[int(len(samples) * 0.95)]
print("risk gate per decision (20,000 decisions over 200 portfolios of 9 positions, 120 returns)")
print(f"  gate        p50 {p50 * 1e6:7.1f} µs   p95 {p95 * 1e6:7.1f} µs   (previous service: 4120 µs p95)")
checks = []
for i in range(5_000):
    book = books[i % len(books)]
    t0 = time.perf_counter()
    violations(
        "BTCUSD",
        gate(Action.BUY, 0.6, "BTCUSD", returns, book, LIMITS, RULES).side or "BUY",
        D("0.01"),
        book,
        LIMITS,
        RULES,
        returns,
    )  # type: ignore[arg-type]
    checks.append(time.perf_counter() - t0)
checks.sort()
print(
    f"  gate + re-check of every limit   p50 {statistics.median(checks) * 1e6:7.1f} µs"
    f"   p95 {checks[int(len(checks) * 0.95)] * 1e6:7.1f} µs"
)
