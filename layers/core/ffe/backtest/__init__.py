"""Backtests that replay the DecisionCycle's own domain functions (see ``engine`` for the execution model)."""

from ffe.backtest.engine import (
    ALL_STRATEGIES,
    BacktestConfig,
    BacktestResult,
    BarArrays,
    Metrics,
    StrategyName,
    StrategyRun,
    holdout_start,
    periods_per_year,
    run_backtest,
)

__all__ = [
    "ALL_STRATEGIES",
    "BacktestConfig",
    "BacktestResult",
    "BarArrays",
    "Metrics",
    "StrategyName",
    "StrategyRun",
    "holdout_start",
    "periods_per_year",
    "run_backtest",
]
