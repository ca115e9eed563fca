"""The metric registry and emit(): only declared names and dimension sets go out, always with service, and the
asset is a property, never a dimension."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ffe.contracts import DataSource, DecisionRecord, FailureRecord, RecordDecisionResult, VoterOutput
from ffe.decision_metrics import record_metrics
from ffe.domain.models import Action, Timeframe
from ffe.observability import HIGH_CARDINALITY, METRICS, Metric, MetricUnit, UndeclaredMetricError, emit

AS_OF = datetime(2019, 6, 15, 12, 1, tzinfo=UTC)


def emitted(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and "_aws" in line]


def declared(document: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    [[*dimensions]] = directive["Dimensions"]
    [metric] = directive["Metrics"]
    return metric["Name"], tuple(dimensions)


def test_emit_prints_the_declared_dimensions_plus_service_and_the_asset_as_a_property(capsys) -> None:
    emit("decisions", 1, {"asset": "BTCUSD"}, action="BUY")
    [doc] = emitted(capsys.readouterr().out)
    assert declared(doc) == ("decisions", ("service", "action"))
    assert (doc["service"], doc["action"], doc["asset"], doc["decisions"]) == ("ffe", "BUY", "BTCUSD", [1.0])
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "FFE"


def test_emit_refuses_a_name_the_registry_does_not_declare(capsys) -> None:
    with pytest.raises(UndeclaredMetricError, match="'decision' is not in"):
        emit("decision", 1, action="BUY")
    assert not emitted(capsys.readouterr().out)


@pytest.mark.parametrize("dimensions", [{}, {"action": "BUY", "asset": "BTCUSD"}, {"side": "BUY"}])
def test_emit_refuses_any_other_dimension_set(dimensions: dict[str, str], capsys) -> None:
    with pytest.raises(UndeclaredMetricError, match="takes dimensions \\['action'\\]"):
        emit("decisions", 1, None, **dimensions)
    assert not emitted(capsys.readouterr().out)


def test_no_metric_may_declare_a_high_cardinality_dimension() -> None:
    assert not any(HIGH_CARDINALITY & set(m.dimensions) for m in METRICS.values())
    with pytest.raises(ValueError, match="can only be properties"):
        Metric("per_asset", MetricUnit.Count, ("asset",), "nobody", "dashboard")


def test_every_metric_says_what_watches_it() -> None:
    with pytest.raises(ValueError, match="watched_by"):
        Metric("orphan", MetricUnit.Count, (), "nobody", "nothing")
    unwatched = {n for n, m in METRICS.items() if m.watched_by.startswith("unwatched: ")}
    assert all(len(METRICS[n].watched_by) > len("unwatched: ") + 10 for n in unwatched)  # and why


def decision(**change: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "cycle_id": "c",
        "as_of": AS_OF,
        "timeframe": Timeframe.H1,
        "asset": "ETHUSD",
        "bar_time": None,
        "action": Action.HOLD,
        "confidence": 0.6,
        "stale": False,
        "reason": "no signal",
        "data_age_seconds": 60.0,
        "staleness_threshold_seconds": 7200,
        "model": "inference_ensemble",
        "model_version": "v1",
        "source": DataSource(provider="replay", dataset="t", synthetic=False, simulated_clock=True),
        "input_sha256": "0" * 64,
    }
    return DecisionRecord(**{**fields, **change})


def test_decision_latency_runs_from_the_fetch_start_less_the_llm_time() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    source = DataSource(provider="r", dataset="t", synthetic=False, simulated_clock=True, fetch_started_at=start)
    llm = VoterOutput(voter="llm", status="voted", latency_ms=400.0)
    record = decision(source=source, voters=[llm])
    assert record.path_latency_ms(start + timedelta(milliseconds=550)) == 150.0
    assert decision().path_latency_ms(start) is None  # no start (a record from before the field): nothing


def test_a_decision_emits_its_action_hold_reason_by_asset_class_and_latency(capsys) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    source = DataSource(provider="r", dataset="t", synthetic=False, simulated_clock=True, fetch_started_at=start)
    result = RecordDecisionResult(kind="decision", id=1, created=True, cycle_id="c", asset="ETHUSD", action=Action.HOLD)
    record_metrics(decision(source=source), result, now=start + timedelta(milliseconds=80))
    docs = {declared(d): d for d in emitted(capsys.readouterr().out)}
    assert set(docs) == {
        ("decisions", ("service", "action")),
        ("hold_reasons", ("service", "reason", "asset_class")),
        ("decision_latency_ms", ("service",)),
    }
    hold = docs["hold_reasons", ("service", "reason", "asset_class")]
    assert (hold["reason"], hold["asset_class"], hold["asset"]) == ("no_signal", "crypto", "ETHUSD")
    assert docs["decision_latency_ms", ("service",)]["decision_latency_ms"] == [80.0]


@pytest.mark.parametrize(
    ("failure", "step"),
    [
        ({"step": "fetch"}, "fetch"),
        ({"step": "gate"}, "gate"),
        ({}, "unknown"),  # a record from before the state machine named the step
        ({"cycle_failure": True, "cycle_input": {"timeframe": "1h"}}, "cycle"),
    ],
)
def test_a_failure_is_counted_by_the_step_that_failed_with_its_error_class_as_a_property(
    failure: dict[str, Any], step: str, capsys
) -> None:
    record = FailureRecord(cycle_id="c", asset="BTCUSD", error="TransientError", **failure)
    result = RecordDecisionResult(
        kind="failure", id=1, created=True, cycle_id="c", asset="BTCUSD", error="TransientError"
    )
    record_metrics(record, result)
    docs = emitted(capsys.readouterr().out)
    [failed] = [d for d in docs if "failures" in d]
    assert (failed["step"], failed["error"], failed["asset"]) == (step, "TransientError", "BTCUSD")
    assert declared(failed) == ("failures", ("service", "step"))
    cycles = [d for d in docs if "cycles" in d]
    assert [(c["event"], c["timeframe"]) for c in cycles] == ([("failed", "1h")] if step == "cycle" else [])


def test_a_breaker_transition_is_counted_by_breaker_and_the_state_it_went_to(capsys) -> None:
    from ffe.adapters.breaker import make_breaker

    breaker = make_breaker("coinbase", fail_max=1, reset_timeout_s=60)

    def failing() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        breaker.call(failing)
    [doc] = [d for d in emitted(capsys.readouterr().out) if "breaker_transitions" in d]
    assert declared(doc) == ("breaker_transitions", ("service", "breaker", "to_state"))
    assert (doc["breaker"], doc["to_state"], doc["from_state"]) == ("coinbase", "open", "closed")
    breaker.half_open()
    [doc] = [d for d in emitted(capsys.readouterr().out) if "breaker_transitions" in d]
    assert doc["to_state"] == "half_open"


@pytest.mark.parametrize(
    ("llm_action", "agreement"), [(Action.BUY, "agree"), (Action.SELL, "disagree"), (None, "absent")]
)
def test_inference_counts_the_model_in_service_and_the_llm_against_the_rl_voter(
    llm_action: Action | None, agreement: str, capsys
) -> None:
    from ffe.decision_metrics import inference_metrics

    rl = VoterOutput(voter="rl", status="voted", action=Action.BUY, latency_ms=5.0)
    llm = VoterOutput(voter="llm", status="voted" if llm_action else "unavailable", action=llm_action, latency_ms=900.0)
    inference_metrics(decision(action=Action.BUY, voters=[rl, llm]), unavailable=False)
    docs = {declared(d)[0]: d for d in emitted(capsys.readouterr().out)}
    assert docs["inference_unavailable"]["inference_unavailable"] == [0.0]
    assert docs["model_in_service"]["model_version"] == "v1" and docs["llm_agreement"]["result"] == agreement
    assert ("llm_latency_ms" in docs) is (llm_action is not None)
