"""Risk gate per decision, p50/p95 in microseconds (in-process, pure), each beside a reference of the same run.

- ``gate`` beside ``gate_on_stats`` with the window's statistics already computed (what the backtester runs): the
  difference is ``return_stats``' share of a decision;
- ``return_stats`` (both sums correctly rounded, ``math.fsum``) beside the same σ and quantile written minimally
  in numpy (``np.std``, ``np.partition``; rounded differently, so not what the gate may use);
- ``gate_one_asset`` (the backtester's gate: one asset held, no pending order) beside ``gate_on_stats`` on the
  same one-asset portfolio, which it must answer identically (tests/unit/domain/test_risk.py);
- ``gate`` then ``violations`` (GateRisk's re-check of every limit) beside ``gate`` alone.
Each pair is timed interleaved, decision by decision, so load on the machine hits both alike.
For scale: the product's previous risk service took 4.12 ms p95 per decision over the network.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import numpy as np

from ffe.domain.models import Action
from ffe.domain.portfolio import Balance, OrderSide, Position, ProductRules
from ffe.domain.risk import (
    Portfolio,
    RiskLimits,
    gate,
    gate_on_stats,
    gate_one_asset,
    return_stats,
    var_index,
    violations,
)

D = Decimal
rng = random.Random(7)
RULES = ProductRules("BTCUSD", min_size=D("0.0001"), size_increment=D("0.00000001"), min_notional=D("1"))
LIMITS = RiskLimits()
DECISIONS = 20_000
returns = [rng.gauss(0, 0.01) for _ in range(119)]  # GateRisk's window: the log returns of 120 bars
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
# The backtester's account: one asset (held or not), no pending order, cash as the available balance.
solo: list[Portfolio] = []
for book in books[:100]:
    position = book.positions["BTCUSD"] if len(solo) % 2 else Position("BTCUSD", D(0), D(0))
    equity, cash = book.balance.equity, book.balance.available  # type: ignore[union-attr]
    owned = {"BTCUSD": position} if position.quantity else {}
    solo.append(Portfolio(Balance("USD", equity, cash), owned, {"BTCUSD": D("50000")}, equity, book.peak_equity))
stats = return_stats(returns, LIMITS.var_confidence)
k = var_index(len(returns), LIMITS.var_confidence)


def numpy_stats() -> tuple[float, float]:
    r = np.asarray(returns)
    return float(r.std()), float(np.partition(r, k)[k])


def gate_at(i: int) -> object:
    return gate(Action.BUY if i % 2 else Action.SELL, 0.6, "BTCUSD", returns, books[i % len(books)], LIMITS, RULES)


def gate_on_stats_at(i: int) -> object:
    book = books[i % len(books)]
    return gate_on_stats(Action.BUY if i % 2 else Action.SELL, 0.6, "BTCUSD", stats, book, LIMITS, RULES)


def one_asset_at(i: int) -> object:
    book = solo[i % len(solo)]
    balance, position = book.balance, book.positions.get("BTCUSD")
    assert balance is not None
    held, average = (position.quantity, position.average_price) if position else (D(0), D(0))
    action = Action.BUY if i % 2 else Action.SELL
    price, start, peak = book.prices["BTCUSD"], book.day_start_equity, book.peak_equity
    args = (balance.equity, balance.available, held, average, price, start, peak, LIMITS, RULES)
    return gate_one_asset(action, 0.6, "BTCUSD", stats, *args)


def one_asset_reference_at(i: int) -> object:
    book = solo[i % len(solo)]
    return gate_on_stats(Action.BUY if i % 2 else Action.SELL, 0.6, "BTCUSD", stats, book, LIMITS, RULES)


def gate_and_recheck_at(i: int) -> object:
    book = books[i % len(books)]
    verdict = gate(Action.BUY, 0.6, "BTCUSD", returns, book, LIMITS, RULES)
    side = verdict.side or OrderSide.BUY
    return violations("BTCUSD", side, verdict.quantity or D("0.01"), book, LIMITS, RULES, returns)


def paired(ours: Callable[[int], object], reference: Callable[[int], object], n: int) -> tuple[list[float], ...]:
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        ours(i)
        t1 = time.perf_counter()
        reference(i)
        t2 = time.perf_counter()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return sorted(a), sorted(b)


def line(name: str, samples: list[float]) -> str:
    p50, p95 = statistics.median(samples), samples[int(len(samples) * 0.95)]
    return f"  {name:<44} p50 {p50 * 1e6:7.1f} µs   p95 {p95 * 1e6:7.1f} µs"


print(f"risk gate per decision ({DECISIONS:,} decisions over 200 portfolios of 9 positions, 119 returns)")
for ours, reference, names, n in [
    (gate_at, gate_on_stats_at, ("gate", "reference: gate_on_stats, stats precomputed"), DECISIONS),
    (
        one_asset_at,
        one_asset_reference_at,
        ("gate_one_asset (the backtester's)", "reference: gate_on_stats, the same portfolio"),
        DECISIONS,
    ),
    (
        lambda i: return_stats(returns, LIMITS.var_confidence),
        lambda i: numpy_stats(),
        ("return_stats", "reference: np.std + np.partition"),
        DECISIONS,
    ),
    (gate_and_recheck_at, gate_at, ("gate + re-check of every limit", "reference: gate alone"), 5_000),
]:
    a, b = paired(ours, reference, n)
    print(line(names[0], a))
    print(line(names[1], b) + f"   ratio (p50) {statistics.median(a) / statistics.median(b):.2f}")
print("  (previous risk service, over the network: 4120 µs p95)")
