"""Backtests that replay the DecisionCycle's own domain functions (see ``engine`` for the execution model)."""
