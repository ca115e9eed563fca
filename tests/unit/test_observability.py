"""The EMF RecordDecision emits: why a HOLD was held (by the data gate's rule), and records kept nowhere else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ffe.contracts import CycleClosed, DataSource, DecisionRecord, RecordDecisionResult
from ffe.decision_metrics import record_metrics
from ffe.domain.models import Action, Timeframe

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
