"""The one place that builds the logger and tracer every function shares, and the metrics they may emit.

``METRICS`` is the registry of every custom metric ffe emits (namespace ``FFE``): name, unit, dimensions and
what watches it. Alarms (iac/alarms.yaml) and dashboards (ffe.monitoring) key on these names and dimension
sets, and a test cross-checks both against this registry, so renaming a metric is an interface change.
``emit`` is the only way to emit one: it refuses a name or a dimension set the registry does not declare,
and always adds the ``service`` dimension. High-cardinality values (the asset above all) go in as EMF
properties: searchable in CloudWatch Logs Insights, never a dimension.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ffe")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FFE")


class _Untraced(BaseSegment):
    """The subsegment of a tracer that is off: takes every annotation and records none."""

    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class UntracedProvider(BaseProvider):
    """The tracer's provider while tracing is off (``POWERTOOLS_TRACE_DISABLED``, or outside Lambda).

    Powertools' default provider is X-Ray's global recorder: importing ``aws_xray_sdk.core`` builds it even
    when tracing is off, and outside Lambda its sampler builds a botocore client too (most of the X-Ray cost
    in a handler's cold import: bench/bench_cold_start.py, docs/performance.md). With tracing on (in Lambda,
    ``Tracing: Active``) the tracer is powertools' X-Ray one, as before.
    """

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _Untraced()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Untraced()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Sequence[str]) -> None: ...
    def patch_all(self) -> None: ...


def build_tracer() -> Tracer:
    """The shared tracer: X-Ray's when tracing is on; one on ``UntracedProvider`` when it is off, by the rule
    powertools itself applies (``Tracer._is_tracer_disabled``), so X-Ray is never imported for nothing."""
    if Tracer._is_tracer_disabled():
        return Tracer(service=SERVICE, disabled=True, provider=UntracedProvider())
    return Tracer(service=SERVICE)


logger = Logger(service=SERVICE)
tracer = build_tracer()

#: Values that must never be a dimension: each distinct value would be a metric of its own.
HIGH_CARDINALITY = frozenset({"asset", "cycle_id", "execution_id", "client_order_id", "error", "decision_id"})

ALARM, DASHBOARD, BOTH = "alarm", "dashboard", "alarm, dashboard"


@dataclass(frozen=True)
class Metric:
    """One custom metric: its unit, its dimensions besides ``service``, who emits it and what watches it.

    ``watched_by`` is "alarm", "dashboard", "alarm, dashboard", or "unwatched: <why>".
    """

    name: str
    unit: MetricUnit
    dimensions: tuple[str, ...]
    emitted_by: str
    watched_by: str

    def __post_init__(self) -> None:
        if HIGH_CARDINALITY & set(self.dimensions):
            raise ValueError(f"{self.name}: {sorted(HIGH_CARDINALITY & set(self.dimensions))} can only be properties")
        if self.watched_by not in (ALARM, DASHBOARD, BOTH) and not self.watched_by.startswith("unwatched: "):
            raise ValueError(f"{self.name}: watched_by {self.watched_by!r}")


_C, _MS, _PCT, _S, _NONE = (
    MetricUnit.Count,
    MetricUnit.Milliseconds,
    MetricUnit.Percent,
    MetricUnit.Seconds,
    MetricUnit.NoUnit,
)

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        # RecordDecision
        Metric("decisions", _C, ("action",), "RecordDecision", DASHBOARD),
        Metric("hold_reasons", _C, ("reason", "asset_class"), "RecordDecision", DASHBOARD),
        Metric("failures", _C, ("step",), "RecordDecision (and itself when the store refuses: step=record)", BOTH),
        Metric("cycles", _C, ("event", "timeframe"), "RecordDecision", BOTH),
        Metric("duplicate_records", _C, (), "RecordDecision (a retried write that found its first)", DASHBOARD),
        Metric("records_lost", _C, (), "RecordDecision (records neither the store nor the DLQ took)", BOTH),
        Metric("decision_latency_ms", _MS, (), "RecordDecision (fetch start to record, less the LLM's time)", BOTH),
        # every step handler
        Metric("state_latency_ms", _MS, ("state",), "every step handler", DASHBOARD),
        # InferDecision
        Metric("llm_latency_ms", _MS, (), "InferDecision", DASHBOARD),
        Metric("inference_unavailable", _C, (), "InferDecision", BOTH),
        Metric("llm_agreement", _C, ("result",), "InferDecision", DASHBOARD),
        Metric("model_in_service", _C, ("model_version",), "InferDecision", DASHBOARD),
        # DetectRegime
        Metric("regime_probability", _NONE, ("asset_class", "regime"), "DetectRegime", DASHBOARD),
        # GateRisk
        Metric("risk_blocks", _C, ("rule",), "GateRisk", DASHBOARD),
        Metric("risk_violation_not_blocked", _C, (), "GateRisk", BOTH),
        Metric("portfolio_value", _NONE, ("account",), "GateRisk (after settling)", DASHBOARD),
        # the paper broker, when a fill closes or reduces a position
        Metric("trade_pnl", _NONE, ("account",), "the paper broker's fills (GateRisk settles)", DASHBOARD),
        # ExecuteOrder
        Metric("orders", _C, ("side",), "ExecuteOrder", DASHBOARD),
        # FetchMarketData
        Metric("bars_fetched", _C, (), "FetchMarketData", DASHBOARD),
        Metric("cache_hit_rate", _PCT, (), "FetchMarketData (live routes)", BOTH),
        Metric("provider_fallbacks", _C, (), "FetchMarketData (live routes)", DASHBOARD),
        # CheckStaleness
        Metric("data_staleness_seconds", _S, (), "CheckStaleness", DASHBOARD),
        Metric("stale_series", _C, (), "CheckStaleness", DASHBOARD),
        # circuit breakers, pre-flight
        Metric("breaker_transitions", _C, ("breaker", "to_state"), "the circuit breakers", BOTH),
        Metric("provider_healthy", _C, ("provider",), "Preflight", BOTH),
        # experiments (issue 15): per decision an experiment covered (RecordDecision), per review (Close the cycle)
        Metric("experiment_decisions", _C, ("experiment", "arm"), "RecordDecision (the arm that acted)", DASHBOARD),
        Metric("experiment_agreement", _C, ("experiment", "result"), "RecordDecision (both arms' actions)", DASHBOARD),
        Metric("experiment_latency_ms", _MS, ("experiment", "arm"), "RecordDecision (each arm's inference)", DASHBOARD),
        Metric("experiment_confidence_delta", _NONE, ("experiment",), "RecordDecision (treatment-control)", DASHBOARD),
        Metric("experiment_performance", _NONE, ("experiment", "arm", "metric"), "the experiment review", DASHBOARD),
        Metric("experiment_share", _NONE, ("experiment",), "the experiment review (the treatment's share)", DASHBOARD),
        Metric("experiment_transitions", _C, ("to_status", "trigger"), "the experiment review, API and CLI", DASHBOARD),
        Metric("experiment_rollbacks", _C, (), "the experiment review (a guardrail stopped an experiment)", BOTH),
        # training, retention, cleanup
        Metric("training_runs", _C, ("result",), "ffe train / the training job (EMF on stdout)", BOTH),
        Metric("ewc_degradation_pct", _PCT, (), "ffe train / the training job (EMF on stdout)", BOTH),
        Metric("retention_partitions_dropped", _C, (), "the retention job", DASHBOARD),
        Metric("models_cleaned", _C, (), "the checkpoint cleanup", DASHBOARD),
    )
}


class UndeclaredMetricError(ValueError):
    """A metric name, or a dimension set, that ``METRICS`` does not declare (a bug: tests catch it)."""


def _checked(name: str, dimensions: Mapping[str, str]) -> Metric:
    metric = METRICS.get(name)
    if metric is None:
        raise UndeclaredMetricError(f"metric {name!r} is not in ffe.observability.METRICS")
    if set(dimensions) != set(metric.dimensions):
        raise UndeclaredMetricError(
            f"metric {name!r} takes dimensions {sorted(metric.dimensions)}, not {sorted(dimensions)}"
        )
    return metric


def emf_document(
    name: str, value: float, properties: Mapping[str, Any] | None = None, **dimensions: str
) -> dict[str, Any]:
    """The EMF document for one value of ``name``: exactly its declared dimensions plus ``service``.

    ``properties`` (the asset, an error class, ...) land in the document as searchable keys, not dimensions.

    Raises:
        UndeclaredMetricError: ``name`` or the set of dimension names is not what ``METRICS`` declares.
    """
    metric = _checked(name, dimensions)
    one = EphemeralMetrics(namespace=NAMESPACE)
    one.add_metric(name=name, unit=metric.unit, value=value)
    one.add_dimension(name="service", value=SERVICE)
    for key in metric.dimensions:
        one.add_dimension(name=key, value=str(dimensions[key]))
    for key, prop in (properties or {}).items():
        one.add_metadata(key=key, value=prop)
    return cast(dict[str, Any], one.serialize_metric_set())


def emit(name: str, value: float, properties: Mapping[str, Any] | None = None, **dimensions: str) -> None:
    """Print ``emf_document(...)`` as one line on stdout, where Lambda's log stream turns it into a metric.

    Raises:
        UndeclaredMetricError: ``name`` or the set of dimension names is not what ``METRICS`` declares.
    """
    print(json.dumps(emf_document(name, value, properties, **dimensions), separators=(",", ":"), default=str))


@contextmanager
def state_latency(state: str) -> Iterator[None]:
    """Emit ``state_latency_ms{state}``: how long the block took, whether it returned or raised."""
    start = time.perf_counter()
    try:
        yield
    finally:
        emit("state_latency_ms", round((time.perf_counter() - start) * 1000, 3), state=state)


def timed(state: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a Lambda handler so each invocation emits ``state_latency_ms{state}``."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def timed_handler(*args: Any, **kwargs: Any) -> Any:
            with state_latency(state):
                return handler(*args, **kwargs)

        return timed_handler

    return wrap


__all__ = [
    "METRICS",
    "NAMESPACE",
    "SERVICE",
    "Metric",
    "MetricUnit",
    "UndeclaredMetricError",
    "UntracedProvider",
    "emf_document",
    "emit",
    "logger",
    "state_latency",
    "timed",
    "tracer",
]
