"""Offline model training (regime mixture, RL meta-controller, EWC updates): torch and scikit-learn live here,
never in a Lambda package (docs/architecture.md, Dependency rules)."""
