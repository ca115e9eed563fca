"""gpu_inference/tracing.py: the exporter and the service name come from the standard OTEL_* variables."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gpu_inference import tracing


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "FFE_TRACE_EXPORTER"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """What the "console" exporter receives."""
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "ConsoleSpanExporter", lambda: exporter)
    return exporter


def _span(provider: TracerProvider) -> None:
    with tracing.get_tracer(provider).start_as_current_span("invocations"):
        pass


def test_otel_traces_exporter_picks_the_exporter(
    monkeypatch: pytest.MonkeyPatch, console: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    _span(tracing.make_provider())
    assert [s.name for s in console.get_finished_spans()] == ["invocations"]


@pytest.mark.parametrize("value", [None, "none", ""])
def test_otel_traces_exporter_none_or_unset_exports_nothing(
    monkeypatch: pytest.MonkeyPatch, console: InMemorySpanExporter, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    monkeypatch.setenv("FFE_TRACE_EXPORTER", "console")  # the old project-specific name is not read any more
    _span(tracing.make_provider())
    assert console.get_finished_spans() == ()


def test_otel_traces_exporter_rejects_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER must be none, console or otlp"):
        tracing.make_provider()


def test_service_name_comes_from_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ffe-inference")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=ffe,deployment.environment=dev")
    attributes = tracing.make_provider(InMemorySpanExporter()).resource.attributes
    assert attributes["service.name"] == "ffe-inference"
    assert (attributes["service.namespace"], attributes["deployment.environment"]) == ("ffe", "dev")


def test_service_name_defaults_to_the_constant() -> None:
    attributes = tracing.make_provider(InMemorySpanExporter()).resource.attributes
    assert attributes["service.name"] == tracing.SERVICE_NAME
