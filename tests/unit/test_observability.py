"""The EMF RecordDecision emits: why a HOLD was held (by the data gate's rule), and records kept nowhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ffe.contracts import CycleClosed, DataSource, DecisionRecord, RecordDecisionResult
from ffe.decision_metrics import record_metrics
from ffe.domain.models import Action, Timeframe
from tests.conftest import ROOT

SOURCE = DataSource(provider="replay", dataset="t", synthetic=False, simulated_clock=True)


def emitted(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and "_aws" in line]


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("stale data: last bar closed 3 h ago", "stale_data"),
        ("gappy_data: 12 bars missing", "gappy_data"),
        ("insufficient_history: 51 bars, 84 needed", "insufficient_history"),
        ("no_bars: nothing", "no_bars"),
        ("forming_bar: closes 12:50", "forming_bar"),
    ],
)
def test_a_data_gate_hold_is_counted_by_its_rule(reason: str, label: str, capsys) -> None:
    record = DecisionRecord(
        cycle_id="c",
        as_of=datetime(2019, 6, 15, 12, 1, tzinfo=UTC),
        timeframe=Timeframe.H1,
        asset="BTCUSD",
        bar_time=None,
        action=Action.HOLD,
        confidence=1.0,
        stale=True,
        reason=reason,
        data_age_seconds=None,
        staleness_threshold_seconds=7200,
        model="staleness_gate",
        model_version="1",
        source=SOURCE,
        input_sha256="0" * 64,
    )
    result = RecordDecisionResult(kind="decision", id=1, created=True, cycle_id="c", asset="BTCUSD", action=Action.HOLD)
    record_metrics(record, result)
    [hold] = [m for m in emitted(capsys.readouterr().out) if "hold_reasons" in m]
    assert hold["reason"] == label


def test_records_kept_only_in_the_history_are_counted_once(capsys) -> None:
    closed = CycleClosed(
        cycle_id="c",
        execution_id="arn:x",
        status="SUCCEEDED",
        outcomes=[{"asset": "BTCUSD", "outcome": "lost"}, {"asset": "ETHUSD", "outcome": "recorded"}],
    )
    first = RecordDecisionResult(kind="cycle_closed", id=None, created=True, cycle_id="c", asset=None)
    record_metrics(closed, first)
    [lost] = [m for m in emitted(capsys.readouterr().out) if "records_lost" in m]
    assert lost["records_lost"] in (1.0, [1.0])
    record_metrics(closed, first.model_copy(update={"created": False}))  # a retried close: not counted again
    assert not [m for m in emitted(capsys.readouterr().out) if "records_lost" in m]


IMPORT_OBSERVABILITY = """
import json, sys
from ffe.observability import tracer
print(json.dumps({
    "provider": type(tracer.provider).__module__ + "." + type(tracer.provider).__name__,
    "disabled": bool(tracer.disabled),
    "xray_recorder_built": "aws_xray_sdk.core" in sys.modules,
    "botocore_client": "botocore.client" in sys.modules,
}))
"""


def _import_observability(**env: str) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if k not in ("POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT")}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT)])
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_OBSERVABILITY], env={**base, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "env",
    [{"POWERTOOLS_TRACE_DISABLED": "true"}, {}, {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"}],
    ids=["disabled", "outside-lambda", "disabled-in-lambda"],
)
def test_with_tracing_off_no_xray_recorder_or_botocore_client_is_built(env: dict[str, str]) -> None:
    result = _import_observability(**env)
    assert result == {
        "provider": "ffe.observability.UntracedProvider",
        "disabled": True,
        "xray_recorder_built": False,
        "botocore_client": False,
    }


def test_in_lambda_with_tracing_on_the_tracer_is_xrays() -> None:
    result = _import_observability(LAMBDA_TASK_ROOT="/var/task")
    assert result["provider"] == "aws_xray_sdk.core.async_recorder.AsyncAWSXRayRecorder"
    assert result["disabled"] is False


def test_an_untraced_handler_returns_and_raises_as_it_would_traced() -> None:
    from ffe.observability import UntracedProvider
    from ffe.observability import tracer as untraced

    assert isinstance(untraced.provider, UntracedProvider)  # tests run with POWERTOOLS_TRACE_DISABLED (conftest)

    @untraced.capture_lambda_handler
    def handler(event: dict[str, int], context: object) -> dict[str, int]:
        if event.get("fail"):
            raise ValueError("refused")
        return {"n": event["n"] + 1}

    @untraced.capture_method
    def method(n: int) -> int:
        return n * 2

    assert handler({"n": 1}, None) == {"n": 2}
    assert method(4) == 8
    with pytest.raises(ValueError, match="refused"):
        handler({"fail": 1}, None)
