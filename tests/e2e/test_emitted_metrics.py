"""What the in-process Lambdas of real offline cycles print as EMF: every metric and dimension set is one the
registry (ffe.observability.METRICS) declares, always with service and never with the asset, and the metrics
the dashboards and alarms need are there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ffe.local.aws import LocalCloud
from ffe.local.runner import DEFAULT_AS_OF
from ffe.observability import HIGH_CARDINALITY, METRICS
from tests.conftest import ROOT

Emitted = list[tuple[str, tuple[str, ...], dict[str, Any]]]  # (metric, its dimension names, the document)


@pytest.fixture(scope="module")
def emitted(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emitted]:
    """Two 1h cycles: the universe (fresh crypto, weekend FX held stale) and one with an unknown asset."""
    emf = tmp_path_factory.mktemp("emf") / "emf.jsonl"
    with LocalCloud(ROOT, postgres, emf_file=emf) as cloud:
        for assets in (None, ["BTCUSD", "XAUUSD"]):
            event = cloud.scheduled_event("1h", DEFAULT_AS_OF)
            body = {**cloud.schedules["1h"].input_for(event), "cycle_id": f"emitted-metrics-{uuid.uuid4()}"}
            desc = cloud.wait(cloud.start_execution({**body, **({"assets": assets} if assets else {})}), timeout_s=120)
            assert desc["status"] == "SUCCEEDED"
    out: Emitted = []
    for line in emf.read_text(encoding="utf-8").splitlines():
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "FFE"
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    out.append((metric["Name"], tuple(dimensions), document))
    yield out


def test_every_emitted_metric_and_dimension_set_is_declared(emitted: Emitted) -> None:
    assert emitted
    for name, dimensions, document in emitted:
        assert name in METRICS, f"{name} is emitted but not in ffe.observability.METRICS"
        assert dimensions == ("service", *METRICS[name].dimensions), (name, dimensions)
        assert document["service"] == "ffe" and not HIGH_CARDINALITY & set(dimensions)
        unit = next(m["Unit"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"] if m["Name"] == name)
        assert unit == METRICS[name].unit.value


def values(emitted: Emitted, name: str, dimension: str) -> set[str]:
    return {str(doc[dimension]) for n, _, doc in emitted if n == name}


def test_the_new_metrics_are_emitted(emitted: Emitted) -> None:
    names = {name for name, _, _ in emitted}
    # portfolio_value and orders depend on what the shared paper account already holds for these bars (other
    # tests' cycles reserve them too), so they are not required here; every one emitted is checked above
    assert {
        "decision_latency_ms",
        "state_latency_ms",
        "model_in_service",
        "llm_agreement",
        "regime_probability",
        "decisions",
        "hold_reasons",
        "failures",
        "cycles",
        "inference_unavailable",
    } <= names
    assert {"fetch", "staleness", "regime", "infer", "record"} <= values(emitted, "state_latency_ms", "state")
    assert values(emitted, "failures", "step") == {"fetch"}  # XAUUSD is not in the universe
    assert {("opened", "1h"), ("closed", "1h")} <= {
        (d["event"], d["timeframe"]) for n, _, d in emitted if n == "cycles"
    }
    assert values(emitted, "llm_agreement", "result") == {"absent"}  # no Ollama offline: the LLM could not vote
    assert values(emitted, "hold_reasons", "asset_class") >= {"fx"}  # the weekend's FX bars are stale
    assert values(emitted, "regime_probability", "asset_class") == {"crypto"}


def test_the_asset_is_a_property_of_the_per_asset_metrics(emitted: Emitted) -> None:
    for name in ("decisions", "hold_reasons", "decision_latency_ms", "inference_unavailable", "regime_probability"):
        assets = values(emitted, name, "asset")
        assert assets and assets <= {"BTCUSD", "ETHUSD", "EURUSD", "GBPUSD"}, (name, assets)


def test_decision_latency_is_a_plausible_wall_clock_duration(emitted: Emitted) -> None:
    latencies = [doc["decision_latency_ms"] for n, _, doc in emitted if n == "decision_latency_ms"]
    assert all(0 < (v[0] if isinstance(v, list) else v) < 120_000 for v in latencies)
