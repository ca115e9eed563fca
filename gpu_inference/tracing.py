"""OpenTelemetry tracing for the container: spans ``model_load``, ``invocations``, ``rl_voter``, ``llm_voter``.

The exporter comes from the standard ``OTEL_TRACES_EXPORTER``: ``none`` (default), ``console``, or ``otlp`` (needs
``opentelemetry-exporter-otlp-proto-http``; endpoint from the standard ``OTEL_EXPORTER_OTLP_*`` variables). The
resource reads ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``; ``service.name`` is
:data:`SERVICE_NAME` when neither names it.
Tests pass an ``InMemorySpanExporter``. A request continues its caller's trace: the W3C ``traceparent`` header
when present, else the X-Ray ``X-Amzn-Trace-Id`` header (``Root=1-<8 hex>-<24 hex>;Parent=<16 hex>``) that
SageMaker forwards, so the endpoint's spans share the Step Functions execution's trace id.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SERVICE_NAME = "ffe-gpu-inference"
_XRAY_ROOT = re.compile(r"Root=1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")
_XRAY_PARENT = re.compile(r"Parent=([0-9a-fA-F]{16})")
_XRAY_SAMPLED = re.compile(r"Sampled=([01])")
_W3C_IN_ATTRIBUTES = re.compile(r"traceparent=(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})")
CUSTOM_ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"


def make_provider(exporter: str | SpanExporter | None = None) -> TracerProvider:
    """A tracer provider exporting to ``exporter`` (a name as ``OTEL_TRACES_EXPORTER`` takes, or an exporter)."""
    # Resource.create's own attributes win over the environment's: merge the environment back over the default.
    resource = Resource.create({"service.name": SERVICE_NAME}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    configured = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "none"
    name_or_exporter = exporter if exporter is not None else configured
    chosen = _named_exporter(name_or_exporter) if isinstance(name_or_exporter, str) else name_or_exporter
    if chosen is not None:
        provider.add_span_processor(SimpleSpanProcessor(chosen))
    return provider


def _named_exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter()
        return exporter
    raise ValueError(f"OTEL_TRACES_EXPORTER must be none, console or otlp, got {name!r}")


def get_tracer(provider: TracerProvider | None = None) -> trace.Tracer:
    return (provider or make_provider()).get_tracer("gpu_inference")


def parent_context(headers: Mapping[str, str]) -> Context | None:
    """The caller's trace as a parent context; None if it sent none.

    In order: a W3C ``traceparent`` header, an ``X-Amzn-Trace-Id`` header, then the same two inside
    ``X-Amzn-SageMaker-Custom-Attributes`` (InvokeEndpoint's ``CustomAttributes``, which is how InferDecision
    passes its X-Ray trace through SageMaker).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    attributes = lowered.get(CUSTOM_ATTRIBUTES_HEADER, "")
    w3c = _W3C_IN_ATTRIBUTES.search(attributes)
    if "traceparent" not in lowered and w3c:
        lowered["traceparent"] = w3c.group(1)
    if "traceparent" in lowered:
        ctx = TraceContextTextMapPropagator().extract(carrier=lowered)
        if trace.get_current_span(ctx).get_span_context().is_valid:
            return ctx
    amzn = lowered.get("x-amzn-trace-id", "") or attributes
    root = _XRAY_ROOT.search(amzn)
    if root is None:
        return None
    parent = _XRAY_PARENT.search(amzn)
    sampled = _XRAY_SAMPLED.search(amzn)
    span_context = SpanContext(
        trace_id=int(root.group(1) + root.group(2), 16),
        span_id=int(parent.group(1), 16) if parent else random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT if sampled and sampled.group(1) == "0" else TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))
