"""The one place that builds the logger, tracer and metrics every function shares."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ffe")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FFE")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

# Metric names: dashboards and alarms reference these, so renaming one is an interface change.
BARS_FETCHED = "bars_fetched"
DATA_STALENESS_SECONDS = "data_staleness_seconds"
STALE_SERIES = "stale_series"
DECISIONS = "decisions"
FAILURES = "failures"
DUPLICATE_RECORDS = "duplicate_records"
BREAKER_TRANSITIONS = "breaker_transitions"
CACHE_HIT_RATE = "cache_hit_rate"
PROVIDER_FALLBACKS = "provider_fallbacks"
PROVIDER_HEALTHY = "provider_healthy"

__all__ = ["logger", "tracer", "metrics", "MetricUnit"]
