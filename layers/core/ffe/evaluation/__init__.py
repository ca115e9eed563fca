"""Walk-forward evaluation: the statistics of a strategy's returns with their uncertainty (docs/evaluation.md)."""
