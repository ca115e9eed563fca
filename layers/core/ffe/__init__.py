"""ffe: the Finance Feedback Engine, serverless edition."""

__version__ = "0.1.0"
