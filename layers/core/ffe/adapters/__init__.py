"""Implementations of the ports: market data, the decision store, secrets."""
