"""The one place that builds the logger, tracer and metrics every function shares."""

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ffe.contracts import CycleClosed
from ffe.domain.staleness import GateCode

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ffe")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FFE")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

# Metric names: whatever alarms or dashboards a team builds key on these, so renaming one is an interface change.
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

HOLD_REASONS = "hold_reasons"
RISK_BLOCKS = "risk_blocks"
ORDERS = "orders"
RISK_VIOLATION_NOT_BLOCKED = "risk_violation_not_blocked"  # must stay 0 (no alarm on it yet: docs/operations.md)
CYCLES = "cycles"
INFERENCE_UNAVAILABLE = "inference_unavailable"  # decisions held because the endpoint could not answer
RECORDS_LOST = "records_lost"  # records neither the store nor the dead-letter queue took (in the history only)


def record_metrics(record: Any, result: Any) -> None:
    """EMF for one RecordDecision: decisions by action and asset, HOLD reasons, failures by class, cycles."""
    if not result.created:
        metrics.add_metric(name=DUPLICATE_RECORDS, unit=MetricUnit.Count, value=1)
    elif result.kind == "decision":
        metrics.add_dimension(name="action", value=str(result.action))
        metrics.add_dimension(name="asset", value=str(result.asset))
        metrics.add_metric(name=DECISIONS, unit=MetricUnit.Count, value=1)
        if str(result.action) == "HOLD":
            blocked = record.risk is not None and not record.risk.approved
            reason = _refusal(record.reason) if record.stale else "risk_blocked" if blocked else "no_signal"
            with single_metric(name=HOLD_REASONS, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
                metric.add_dimension(name="reason", value=reason)
    elif result.kind == "failure":
        metrics.add_dimension(name="error", value=str(result.error))
        metrics.add_metric(name=FAILURES, unit=MetricUnit.Count, value=1)
    else:
        skipped = result.cycle_status == "SKIPPED"
        metrics.add_dimension(name="event", value="cycle_skipped" if skipped else result.kind)
        metrics.add_metric(name=CYCLES, unit=MetricUnit.Count, value=1)
    lost = record.lost() if isinstance(record, CycleClosed) and result.created else []
    if lost:  # these records are nowhere a replay can reach
        logger.critical("records kept only in the execution history", extra={"assets": [o.asset for o in lost]})
        with single_metric(name=RECORDS_LOST, unit=MetricUnit.Count, value=len(lost), namespace=NAMESPACE):
            pass


def _refusal(reason: str) -> str:
    """The data gate's rule from its HOLD reason: "gappy_data: ..." -> gappy_data; "stale data: ..." -> stale_data."""
    code = reason.split(":", 1)[0].strip()
    return code if code in {c.value for c in GateCode} - {GateCode.FRESH, GateCode.STALE} else "stale_data"


__all__ = ["MetricUnit", "logger", "metrics", "record_metrics", "tracer"]
