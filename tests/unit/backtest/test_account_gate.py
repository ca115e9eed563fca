"""The backtester gates with ``ffe.domain.risk.gate_one_asset`` (the one-asset account, without building a
Portfolio per bar): on every bar the bundled backtests gate, its verdict is ``gate()``'s, GateRisk's own function,
over the window's log returns and the portfolio the backtester used to build, field for field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import ffe.backtest.engine as engine
from ffe.adapters.models import load_bundle
from ffe.adapters.replay import datasets, load_bars
from ffe.backtest.engine import ALL_STRATEGIES, BacktestConfig, run_backtest
from ffe.domain.models import Action
from ffe.domain.portfolio import Balance, Position, ProductRules
from ffe.domain.risk import Portfolio, ReturnStats, RiskLimits, RiskVerdict, gate, gate_one_asset


@pytest.mark.parametrize("asset", ["BTCUSD", "ETHUSD", "EURUSD", "SPX"])
def test_every_gated_bar_gets_gates_verdict(asset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bar: list[Any] = []  # the bar being gated and the book it is read from
    checked: list[int] = []
    real_gate = engine._gate

    def spy_gate(
        code: int, confidence: float, t: int, price: Decimal, equity: Decimal, account: Any, book: Any, ledger: Any
    ) -> Any:
        bar[:] = [t, book]
        return real_gate(code, confidence, t, price, equity, account, book, ledger)

    def both(
        action: Action,
        confidence: float,
        name: str,
        stats: ReturnStats | None,
        equity: Decimal,
        available: Decimal,
        held: Decimal,
        average: Decimal,
        price: Decimal,
        day_start: Decimal,
        peak: Decimal,
        limits: RiskLimits,
        rules: ProductRules,
    ) -> RiskVerdict:
        t, book = bar
        got = gate_one_asset(
            action, confidence, name, stats, equity, available, held, average, price, day_start, peak, limits, rules
        )
        returns = book.log_returns[max(0, t - book.cfg.lookback_bars + 1) : t]
        positions = {name: Position(name, held, average)} if held else {}
        portfolio = Portfolio(Balance("USD", equity, available), positions, {name: price}, day_start, peak)
        expected = gate(action, confidence, name, returns, portfolio, limits, rules)
        assert got == expected, (t, got, expected)
        assert str(got.quantity) == str(expected.quantity), t
        checked.append(t)
        return got

    monkeypatch.setattr(engine, "_gate", spy_gate)
    monkeypatch.setattr(engine, "gate_one_asset", both)
    dataset = datasets()[asset]
    result = run_backtest(
        load_bars(dataset.file),
        asset,
        dataset.timeframe,
        load_bundle("bundled"),
        config=BacktestConfig(strategies=ALL_STRATEGIES),
    )
    gated = sum(run.metrics.blocked for run in result.runs.values()) + sum(
        int((run.orders != 0).sum()) for run in result.runs.values()
    )
    assert len(checked) == gated > 0
